# lmc-rebasin — thin wrappers around pip, pytest and `python -m lmc_utils.run`.
#   make figures   set up, then regenerate every figure and table at the cpu profile, then claims
#   make check     regenerate into build/check/ and compare with the committed figures/<profile>/
#                  (fails when a verdict changed)
#   make claims    figures/<profile>/claims.md from the verdict tables (and, at cpu, README's table)
#   make test      set up, then unit/property tests (bench/gpu_check.sh smallest on the CPU among them),
#                  the nbval smoke run of every notebook and the
#                  paper profile's dry run of every notebook but 02, 03, 04, 05, 07, 09, 10 (tests/test_paper_dry_run.py;
#                  `make dry-run` runs all of them), on
#                  $(TEST_WORKERS) pytest-xdist workers of 1 thread each
#   make dry-run   every notebook with the paper profile's configs at tiny budgets (PROFILE=... for
#                  another), into build/dry-run/<profile>/ with its own model cache (minutes on a CPU)
#   make smoke     every notebook at the smoke profile (seconds each)
#   make lab       JupyterLab (the .py notebooks open as notebooks through jupytext)
#   make site      static HTML site of a profile's results in build/site/ (PROFILE=smoke|cpu; offline)
#   make profile   seconds per phase (training, matching, curves, ...) of each notebook, run warm from the
#                  model cache, into bench/phases_<profile>.md (NOTEBOOKS=... for some)
#   make gpu-check the first run on a GPU (bench/gpu_check.sh; the CPU where torch sees none): every notebook at
#                  the smoke profile with -p device cuda, the ResNet20 epoch bench and weight matching on the
#                  device, into bench/gpu_check_<device>.md; exit 1 if a step failed (an 8-minute budget,
#                  meant for one H100; GPU_CHECK_SIZE=smallest: half a minute on one CPU thread)
# A virtual environment .venv is created unless one is already active.

PROFILE ?= cpu
NOTEBOOKS ?=
THREADS ?= 2
# `make dry-run` checks the paper profile unless PROFILE is given on the command line or in the environment.
DRY_RUN_PROFILE := $(if $(filter command line environment,$(origin PROFILE)),$(PROFILE),paper)
# pytest-xdist workers for `make test` (one thread each); each notebook (nbval) and each notebook's
# dry run is one scope, so they spread over the workers.
TEST_WORKERS ?= 2
# bench/gpu_check.sh's size: full (on a GPU) or smallest (a minute on a CPU).
GPU_CHECK_SIZE ?= full
# The README's findings table is generated from the cpu profile's verdicts only.
README_FLAG := $(if $(filter cpu,$(PROFILE)),--readme README.md)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
ifdef VIRTUAL_ENV
PYTHON := python
OWN_ENV :=
else ifdef CONDA_PREFIX
PYTHON := python
OWN_ENV :=
else
PYTHON := .venv/bin/python
OWN_ENV := yes
endif

.PHONY: setup figures ste check claims smoke dry-run test unit nbval lab bench profile gpu-check site clean

# .venv is the Makefile's own: created, pip upgraded and the package installed whenever
# pyproject.toml is newer than the stamp. An environment you activated is yours: the package is
# installed there only when it (or its test/lab/docs extras) is missing or its version differs, and
# pip itself is never upgraded there.
ifdef OWN_ENV
setup: .venv/.lmc-rebasin-installed

.venv/.lmc-rebasin-installed: pyproject.toml
	@if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
	$(PYTHON) -m pip install --upgrade --quiet pip
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	@touch $@
else
setup:
	@if $(PYTHON) -I -c "import importlib.metadata as m, importlib.util as u, os, sys; \
	  here = os.path.realpath('lmc_utils'); spec = u.find_spec('lmc_utils'); \
	  ok = m.version('lmc-rebasin') == '$(VERSION)' and spec is not None and \
	       os.path.dirname(os.path.realpath(spec.origin)) == here and \
	       all(u.find_spec(x) for x in ('pytest', 'xdist', 'nbval', 'jupyterlab', 'sphinx', 'myst_nb', 'sphinx_book_theme')); \
	  sys.exit(0 if ok else 1)" 2>/dev/null; then \
	  echo "lmc-rebasin $(VERSION) is installed in the active environment; not reinstalling"; \
	else \
	  echo "installing lmc-rebasin $(VERSION) into the active environment ($$($(PYTHON) -c 'import sys; print(sys.prefix)'))"; \
	  $(PYTHON) -m pip install --quiet -e ".[dev]"; \
	fi
endif

figures: setup
	$(PYTHON) -m lmc_utils.run --profile $(PROFILE) --threads $(THREADS) $(NOTEBOOKS)
	$(PYTHON) -m lmc_utils.claims --profile $(PROFILE) $(README_FLAG)

# STE runs to convergence (issue #39), each in its own figures folder (figures/<profile>+<hash>): Ainsworth
# et al.'s STE protocol until each run's held loss plateaus (patience 10 evaluations, 15,000-step cap), with the
# permutation it would have returned after 50, 250 and 1,000 steps. Notebook 03 (MNIST MLP; 23 min on 2 cores
# from the batch's models) and, at cpu, notebook 10's three-model study on its MLP rung and on VGG11-LN x1/8
# trained to its floor (rung vgg11_ln_60k, 3 triples: 63 min cold on 2 cores, its 12 models included, and 14 min
# for the MLP rung; figures/cpu+fe692905/ste_run_2026-12-07.txt). The batch (make figures) stops STE after 50
# steps and counts those rows apart.
STE_CONVERGED = {steps: 15000, patience: 10, lr: 0.01, batch_size: 1000, held_size: 1000, eval_every: 50, \
  wm_sweeps: 100, budgets: [50, 250, 1000]}
ste: setup
	$(PYTHON) -m lmc_utils.run --profile $(PROFILE) --threads $(THREADS) -p ste_steps 15000 -p ste_patience 10 \
	  -p ste_budgets '[50, 250, 1000]' 03
ifeq ($(PROFILE),cpu)
	$(PYTHON) -m lmc_utils.run --profile $(PROFILE) --threads $(THREADS) -p studies '[three_models]' \
	  -p n_triples '{mlp_plain: 8, vgg11_ln: 0, vgg11_ln_60k: 3}' -p ste '$(STE_CONVERGED)' 10
endif

check: setup
	$(PYTHON) -m lmc_utils.run --profile $(PROFILE) --threads $(THREADS) --check $(NOTEBOOKS)

claims: setup
	$(PYTHON) -m lmc_utils.claims --profile $(PROFILE) $(README_FLAG)

smoke: setup
	$(PYTHON) -m lmc_utils.run --profile smoke --threads $(THREADS) $(NOTEBOOKS)

dry-run: setup
	$(PYTHON) -m lmc_utils.run --profile $(DRY_RUN_PROFILE) --dry-run --threads $(THREADS) $(NOTEBOOKS)

test: setup
	rm -rf build/nbval
	$(PYTHON) -m lmc_utils.run --profile smoke --prepare build/nbval
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 LMC_STRICT_FIGURES=1 $(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadscope \
	  -m "not heavy_dry_run" --durations=15 tests build/nbval --nbval-lax --nbval-current-env

lab: setup
	$(PYTHON) -m jupyter lab notebooks

# The site never executes a notebook: it renders figures/$(PROFILE)/notebooks/ and claims.md as
# they are (run `make figures` / `make claims` first), with -W (any warning fails the build).
site: setup
	rm -rf build/site build/site-doctrees
	$(PYTHON) docs/stage.py --profile $(PROFILE) build/site-src
	LMC_SITE_PROFILE=$(PROFILE) $(PYTHON) -m sphinx -W --keep-going -q -b html -c docs \
	  -d build/site-doctrees build/site-src build/site
	@echo "open build/site/index.html"

bench: setup
	$(PYTHON) bench/bench_weight_matching.py
	$(PYTHON) bench/bench_training.py
	$(PYTHON) bench/bench_activation_matching.py

profile: setup
	$(PYTHON) bench/profile_notebooks.py --profile $(PROFILE) --threads $(THREADS) --out bench/phases_$(PROFILE).md $(NOTEBOOKS)

gpu-check: setup
	GPU_CHECK_PYTHON=$(PYTHON) GPU_CHECK_THREADS=$(THREADS) bash bench/gpu_check.sh $(GPU_CHECK_SIZE)

clean:
	rm -rf build .pytest_cache
