# mimo-operator: one entry point for set-up, tests and the demo.
# Everything the targets need is installed from PyPI / the Go module proxy on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml sandbox/pyproject.toml | sha1sum | cut -c1-12)

.PHONY: help venv lint unit integration e2e test demo bench crd clean

help:
	@echo "make demo   - plan the example deployments (and, with the sandbox, run them)"
	@echo "make test   - static checks, unit, integration and e2e tests"
	@echo "make lint   - ruff, mypy --strict, import-linter"
	@echo "make bench  - benchmarks (prints numbers, writes bench-results/)"

$(STAMP): pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" -e ./sandbox
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check operator sandbox tests
	$(BIN)/ruff format --check operator sandbox tests
	$(BIN)/mypy operator/mimo_operator sandbox/mimo_sandbox
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

-include mk/*.mk

test: lint
	$(BIN)/pytest -q $(PYTEST_ARGS)

demo: $(STAMP) sandbox-bins
	$(BIN)/mimo-operator demo

bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
