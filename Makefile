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

test: $(STAMP)
	$(BIN)/ruff check collect tests rules benchmarks
	$(BIN)/vulture
	$(BIN)/mypy collect
	$(BIN)/python -m pytest -n auto -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.formulas_eval

clean:
	rm -rf $(VENV) outbox/demo .pytest_cache .mypy_cache .ruff_cache
