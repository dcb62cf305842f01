# `make run` and `make test` work on a fresh machine: they create .venv when it is
# missing and (re)install only when pyproject.toml changed since the last install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test test-all lint perf install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/edgeport run

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# ruff (lint, import order, format, argument count), mypy on the whole package, the import contracts
lint: $(DEV_STAMP)
	$(BIN)/ruff check edgeport tests perf
	$(BIN)/ruff format --check edgeport tests perf
	$(BIN)/mypy
	$(BIN)/lint-imports

test-all: $(DEV_STAMP)
	$(BIN)/python -m pytest -q

perf: $(DEV_STAMP)
	$(BIN)/pip install --quiet -e '.[dev,perf]'
	$(BIN)/python perf/run_default.py
	$(BIN)/python perf/backends.py
	$(BIN)/python perf/bench_overhead.py
	$(BIN)/python perf/search.py
	$(BIN)/python perf/gate_aa.py
	$(BIN)/python perf/bench_aa.py
	$(BIN)/python perf/auto_recipes.py
	$(BIN)/python perf/fallback_steps.py
	$(BIN)/python perf/foreign_exporters.py
	$(BIN)/python perf/kd_students.py
	$(BIN)/python perf/runtimes.py

clean:
	rm -rf $(VENV) runs .pytest_cache
