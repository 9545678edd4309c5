# graphxfer: set-up and everyday commands.
#   make demo   - create .venv if needed, install, run the main job on the bundled heart-disease cohorts
#   make test   - the default test suite (a few minutes on 2 CPU cores)
# CUDA users: make TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu126" demo

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.graphxfer-installed
PYTEST_ARGS ?=

.PHONY: install demo test test-slow test-all lint format bench quality clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned, so that the dependency resolver never pulls a multi-GB CUDA build on a CPU machine.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/graphxfer demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

# the quality gate: transfer against scikit-learn and XGBoost baselines -> docs/quality.md
quality: $(STAMP)
	$(BIN)/python -m benchmarks.bench_quality

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache reports
