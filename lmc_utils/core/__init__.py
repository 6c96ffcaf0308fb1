"""Core tier: where things live, settings, atomic files and checkpoints, devices, progress lines,
datasets and model definitions. Imports nothing else of lmc_utils."""
