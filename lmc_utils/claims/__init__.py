"""Claims tier: declared criteria and verdicts with intervals, the models' accuracy floors, summary tables,
the claims report and the rerun check. Imports only :mod:`lmc_utils.core`."""
