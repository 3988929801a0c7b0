# Two commands matter: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/jobstore serve

lint: $(STAMP)
	$(BIN)/ruff check jobstore tests migrations benchmarks
	$(BIN)/ruff format --check jobstore tests migrations benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

format: $(STAMP)
	$(BIN)/ruff format jobstore tests migrations benchmarks
	$(BIN)/ruff check --fix jobstore tests migrations benchmarks

bench: $(STAMP)
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || { echo "installing wrk (HTTP load)"; \
	  (apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)) \
	  >/dev/null 2>&1 || echo "could not install wrk: HTTP create falls back to httpx"; }
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
