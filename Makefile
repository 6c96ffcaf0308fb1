# lmc-rebasin — thin wrappers around pip, pytest and `python -m lmc_utils.run`.
#   make figures   set up, then regenerate every figure and table at the cpu profile, then claims
#   make check     regenerate into build/check/ and compare with the committed figures/<profile>/
#                  (fails when a verdict changed)
#   make claims    figures/<profile>/claims.md from the verdict tables (and, at cpu, README's table)
#   make test      set up, then unit/property tests and the nbval smoke run of every notebook
#   make smoke     every notebook at the smoke profile (seconds each)
#   make lab       JupyterLab (the .py notebooks open as notebooks through jupytext)
# A virtual environment .venv is created unless one is already active.

PROFILE ?= cpu
NOTEBOOKS ?=
THREADS ?= 2
# The README's findings table is generated from the cpu profile's verdicts only.
README_FLAG := $(if $(filter cpu,$(PROFILE)),--readme README.md)
ifdef VIRTUAL_ENV
PYTHON := python
STAMP := $(VIRTUAL_ENV)/.lmc-rebasin-installed
else ifdef CONDA_PREFIX
PYTHON := python
STAMP := $(CONDA_PREFIX)/.lmc-rebasin-installed
else
PYTHON := .venv/bin/python
STAMP := .venv/.lmc-rebasin-installed
endif

.PHONY: setup figures check claims smoke test unit nbval lab bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if [ "$(PYTHON)" = ".venv/bin/python" ] && [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
	$(PYTHON) -m pip install --upgrade --quiet pip
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	@touch $@

figures: setup
	$(PYTHON) -m lmc_utils.run --profile $(PROFILE) --threads $(THREADS) $(NOTEBOOKS)
	$(PYTHON) -m lmc_utils.claims --profile $(PROFILE) $(README_FLAG)

check: setup
	$(PYTHON) -m lmc_utils.run --profile $(PROFILE) --threads $(THREADS) --check $(NOTEBOOKS)

claims: setup
	$(PYTHON) -m lmc_utils.claims --profile $(PROFILE) $(README_FLAG)

smoke: setup
	$(PYTHON) -m lmc_utils.run --profile smoke --threads $(THREADS) $(NOTEBOOKS)

test: setup
	rm -rf build/nbval
	$(PYTHON) -m lmc_utils.run --profile smoke --prepare build/nbval
	$(PYTHON) -m pytest tests build/nbval --nbval-lax --nbval-current-env

lab: setup
	$(PYTHON) -m jupyter lab notebooks

bench: setup
	$(PYTHON) bench/bench_weight_matching.py
	$(PYTHON) bench/bench_training.py

clean:
	rm -rf build .pytest_cache
