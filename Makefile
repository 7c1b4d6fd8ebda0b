# prixfixe: `make train` and `make test` create/refresh the virtualenv in .venv, then run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# the CPU build of torch (on disk on the project's machines); override e.g. TORCH_SPEC=torch for a CUDA build
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: venv train test test-slow lint format bench xla-venv test-xla clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" || $(BIN)/python -m pip install -q torch
	$(BIN)/python -m pip install -q -e ".[dev,interpret]"
	touch $(STAMP)

venv: $(STAMP)

## train the default combination (autosome blocks) on the embedded synthetic data; extra overrides via ARGS="..."
train: venv
	$(BIN)/python train.py $(ARGS)

## the test suite (fast, CPU); slow tests are kept out
test: venv
	$(BIN)/python -m pytest -q $(ARGS)

test-slow: venv
	$(BIN)/python -m pytest -q -m slow $(ARGS)

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

## speed and memory benchmarks (numbers go to stdout and bench/results/)
bench: venv
	$(BIN)/python bench/bench_throughput.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

## torch_xla (optional extra `prixfixe[xla]`) in its own venv: a real Trainer(accelerator="tpu") fit through
## XLA on the CPU (PJRT_DEVICE=CPU); torch_xla pairs only with the same torch minor version, hence .venv-xla
XLA_VENV  ?= .venv-xla
XLA_STAMP := $(XLA_VENV)/.installed

$(XLA_STAMP): pyproject.toml requirements-xla.txt
	test -x $(XLA_VENV)/bin/python || $(PYTHON) -m venv $(XLA_VENV)
	$(XLA_VENV)/bin/python -m pip install -q --upgrade pip
	$(XLA_VENV)/bin/python -m pip install -q -r requirements-xla.txt
	$(XLA_VENV)/bin/python -m pip install -q -e ".[dev]" -r requirements-xla.txt
	touch $(XLA_STAMP)

xla-venv: $(XLA_STAMP)

test-xla: $(XLA_STAMP)
	PJRT_DEVICE=CPU $(XLA_VENV)/bin/python -m pytest -q -p no:cacheprovider -m xla tests/test_xla.py $(ARGS)
