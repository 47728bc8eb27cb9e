# sagkit: the README's two commands are `make workbook` and `make test`; both do all set-up.
# `make workbook` writes into $(RUNS_DIR)/figures/<dataset>/ (git-ignored); `make figures` rebuilds the committed
# tables and Figure 3 from the run summaries kept in results/.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sagkit-installed

DATASET ?= synthetic
DATA_ROOT ?=
PROFILE ?= cpu
DEVICE ?= auto
RUNS_DIR ?= runs
FIGURES_DIR ?=
SEEDS ?= 0

.PHONY: install workbook figures test bench clean-runs

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
		--device $(DEVICE) --runs-dir $(RUNS_DIR) --figures-dir '$(FIGURES_DIR)' --seeds '$(SEEDS)'

RESULTS := $(PY) -m sagkit results
TRAINABLE := --set freeze_stages=-1 --set epochs=15 --set lr_step=10

figures: $(STAMP)
	$(RESULTS) tables --dataset synthetic --out figures
	$(RESULTS) tables --dataset cuhk01 --out results/tables/cuhk01/cpu
	$(RESULTS) controls --dataset cuhk01 --out results/tables/cuhk01/cpu
	$(RESULTS) tables --dataset cuhk01 --set freeze_stages=3 --out results/tables/cuhk01/cpu_freeze3
	$(RESULTS) tables --dataset cuhk01 $(TRAINABLE) --out results/tables/cuhk01/trainable
	$(RESULTS) compare --dataset synthetic --set freeze_stages=2 --against freeze_stages=3 \
		--out results/tables/synthetic/freeze2_vs_freeze3
	$(RESULTS) compare --dataset cuhk01 --set freeze_stages=2 --against freeze_stages=3 \
		--out results/tables/cuhk01/freeze2_vs_freeze3
	$(RESULTS) compare --dataset cuhk01 --set freeze_stages=3 --set bn_stats=shared --against freeze_stages=3 \
		--out results/tables/cuhk01/shared_vs_per_branch
	$(RESULTS) compare --dataset cuhk01 --set freeze_stages=3 --set sag_output=residual --against freeze_stages=3 \
		--out results/tables/cuhk01/residual_vs_replace
	$(RESULTS) compare --dataset cuhk01 $(TRAINABLE) --against freeze_stages=3 \
		--out results/tables/cuhk01/trainable_vs_frozen
	$(RESULTS) compare --dataset cuhk01 $(TRAINABLE) --set bn_stats=shared --against freeze_stages=-1 \
		--against epochs=15 --against lr_step=10 --out results/tables/cuhk01/trainable_shared_vs_per_branch
	$(PY) tools/fill_doc_tables.py

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m sagkit bench

clean-runs:
	rm -rf $(RUNS_DIR)
