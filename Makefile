# The two commands a newcomer needs: `make demo` (a complete round) and `make test` (the test suite).
# Each creates the virtual environment when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/collect demo

# The static checks: ruff (lint rules, not `ruff format`: adopting the formatter would rewrite most files at once),
# mypy over the product and its tests, vulture (dead code) and deptry (every imported package is declared).
lint: $(STAMP)
	$(BIN)/ruff check collect tests rules benchmarks
	$(BIN)/mypy collect tests
	$(BIN)/vulture
	$(BIN)/deptry collect tests benchmarks

test: lint
	$(BIN)/python -m pytest -n auto -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.formulas_eval
	$(BIN)/python -m benchmarks.odf

clean:
	rm -rf $(VENV) outbox/demo .pytest_cache .mypy_cache .ruff_cache
