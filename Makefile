# Two entry points, both usable on a fresh machine with Python 3.11+:
#   make demo   set up .venv from the lock file and run a dry-run sweep of the bundled demo estate
#   make test   set up .venv from the lock file and run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint lock clean

$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

demo: $(BIN)/.installed
	$(BIN)/sweeper demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check sweeper connectors tests bench
	$(BIN)/ruff format --check sweeper connectors tests bench
	$(BIN)/mypy

lock:
	uv pip compile pyproject.toml --extra dev -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
