# Two commands matter: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-topologies chaos fuzz lint format bench soak profile clean

# `make run` installs what running needs; `make test` adds the test tools on top.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

# Extra flags for the node: make run ARGS="--port 9300"
run: $(RUN_STAMP)
	$(BIN)/jobstore serve $(ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check jobstore tests migrations benchmarks fuzz
	$(BIN)/ruff format --check jobstore tests migrations benchmarks fuzz
	$(BIN)/mypy

# The suite on two workers (pytest-xdist): most tests wait on processes and databases, so two
# share this machine's two cores well. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

# PostgreSQL behind PgBouncer, through a failover, with skewed clocks (docs/operations.md): the
# tests that start throwaway clusters, a pooler or faketime. `make test` runs them too.
test-topologies: $(TEST_STAMP)
	$(BIN)/pytest -m topologies

# Chaos (docs/chaos.md): real nodes on a throwaway PostgreSQL cluster, killed with -9 and
# restarted, the cluster restarted, then every invariant checked from the handlers' ledger.
# `make test` runs a short round; this runs the long one. CHAOS_SECONDS sets its length.
chaos: $(TEST_STAMP)
	CHAOS_SECONDS=$${CHAOS_SECONDS:-180} $(BIN)/pytest -m chaos tests/chaos -p no:cacheprovider

# Coverage-guided fuzzing of every wire decoder (docs/fuzzing.md), from the seed corpus in
# fuzz/corpus. FUZZ_SECONDS sets the time per target.
fuzz: $(TEST_STAMP)
	$(BIN)/python -m pip install --quiet 'atheris>=2.3,<4'
	$(BIN)/python fuzz/run.py --seconds $${FUZZ_SECONDS:-60}

format: $(TEST_STAMP)
	$(BIN)/ruff format jobstore tests migrations benchmarks fuzz
	$(BIN)/ruff check --fix jobstore tests migrations benchmarks fuzz

bench: $(TEST_STAMP)
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || { echo "installing wrk (HTTP load)"; \
	  (apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)) \
	  >/dev/null 2>&1 || echo "could not install wrk: HTTP create falls back to httpx"; }
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# A node under sustained load (benchmarks/soak.py): SOAK_MINUTES per database at SOAK_RATE
# creates/s with retention on, plotted into benchmarks/results/; then drain and lookups with a
# million finished jobs in history. About 50 minutes with the defaults.
soak: $(TEST_STAMP)
	$(BIN)/python -m pip install --quiet 'matplotlib>=3.8,<4'
	$(BIN)/python benchmarks/soak.py --minutes $${SOAK_MINUTES:-20} --rate $${SOAK_RATE:-1000} $(SOAK_ARGS)

# Where a node's time goes under make bench's loads (benchmarks/profile_node.py): py-spy samples of
# every node process, summed per library. PROFILE_ARGS picks targets, databases, seconds.
profile: $(TEST_STAMP)
	$(BIN)/python -m pip install --quiet 'py-spy>=0.4,<0.5'
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/profile_node.py $(PROFILE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
