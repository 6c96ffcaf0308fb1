"""Measure tier: evaluation, interpolation and barriers, distances, Taylor estimates, spectra, activation
statistics, re-normalisation (REPAIR/RESCALE/RESHIFT/RESET) and pruning. Imports core and permutation."""
