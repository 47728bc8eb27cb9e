# sagkit: the README's two commands are `make workbook` and `make test`; both do all set-up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sagkit-installed

DATASET ?= synthetic
DATA_ROOT ?=
PROFILE ?= cpu
DEVICE ?= auto
RUNS_DIR ?= runs
FIGURES_DIR ?= figures
SEEDS ?= 0

.PHONY: install workbook test bench clean-runs

install: $(STAMP)

# torch and torchvision are installed first, pinned, so that pip takes them from the local wheel cache.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[workbook,dev]'
	touch $(STAMP)

workbook: $(STAMP)
	$(PY) -m sagkit workbook --dataset $(DATASET) --data-root '$(DATA_ROOT)' --profile $(PROFILE) \
		--device $(DEVICE) --runs-dir $(RUNS_DIR) --figures-dir $(FIGURES_DIR) --seeds '$(SEEDS)'

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m sagkit bench

clean-runs:
	rm -rf $(RUNS_DIR)
