"""Runner tier: profiles and parameters, the Papermill batch runner, provenance, executed copies, dry and
plan runs, and the zoo's command line and job scale-out. May import every tier but the studies."""
