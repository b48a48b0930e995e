# Every target builds .venv itself, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deltasync demo

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy src/deltasync
	$(BIN)/pytest -q -n 2

bench: $(STAMP)
	$(BIN)/deltasync bench exchange --json
	$(BIN)/deltasync bench consensus --json

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
