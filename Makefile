# make test : one command on a fresh machine (venv, dependencies, server binaries, lint, tests)
# make demo : the whole job on private local servers (DEMO_ARGS="--rows N --duration S")
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint servers demo bench clean

# The runtime dependencies exactly as production gets them (requirements.lock, hash
# checked, as in the Dockerfile); then wacdc itself and the dev tools around them.
$(STAMP): pyproject.toml requirements.lock src/wacdc/source/_jsonbinary.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

servers:
	@sh scripts/ensure-servers.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/mypy

# Every real-server test runs on both source flavours, MariaDB and Oracle MySQL (`servers`
# builds the MySQL root when there is no mysqld; WACDC_TEST_FLAVOURS=mysql narrows a run).
# The streaming tests the decode path matters to run again per decode mode (the
# `decoders` marker, tests/conftest.py): mysql-replication decoding the row images, and
# decoding in a child process. WACDC_TEST_DECODERS=compiled narrows a run.
test: $(STAMP) servers lint
	$(BIN)/pytest $(PYTEST_ARGS)

demo: $(STAMP) servers
	$(BIN)/wacdc demo $(DEMO_ARGS)

# Bytecode compiled first, as the image's `pip install` does: every `wacdc run` the
# benchmark times starts as it would in production (this machine sets no-bytecode).
bench: $(STAMP) servers
	$(BIN)/python -m compileall -q src
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
	find src -name '*.so' -delete
