# Two commands for a fresh machine with Python 3.11+ and make:
#   make run    install into .venv and start the server on embedded PostgreSQL
#   make test   install into .venv and run lint, type checks and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# tools/install.py installs under a lock (two first runs at once wait for each other) and stamps what it did.
SERVER := $(VENV)/.installed-server
DEV    := $(VENV)/.installed-dev

.PHONY: run test lint typecheck pytest install browser npm loadtest clean bench-evaluation bench-ofrep

# The server's packages only; the test toolchain is for make test.
run: $(SERVER)
	$(BIN)/flagd serve

test: $(DEV) lint typecheck pytest

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV)
	$(BIN)/mypy

# Test files are shared out to PYTEST_WORKERS processes (each with its own embedded PostgreSQL), a whole
# file to one process so a file's tests keep their order; PYTEST_WORKERS=0 runs in this process.
PYTEST_WORKERS ?= 2

pytest: $(DEV) browser npm
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The results pages are tested in Debian's chromium: installed here when missing and running as root
# (elsewhere those tests skip with a message, and fail under CI=true).
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; fi

# What the browser tests load, at the versions the lock pins (the OpenFeature web SDK and OFREP web provider;
# React, the OpenFeature React SDK and esbuild for the React quickstart): installed when node_modules is
# missing or older than the lock (without npm those tests skip, and fail under CI=true).
NPM_STAMP := tests/browser/node_modules/.package-lock.json
npm: $(if $(shell command -v npm 2>/dev/null),$(NPM_STAMP))

$(NPM_STAMP): tests/browser/package.json tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund
	@touch $@

install: $(DEV)

$(SERVER): pyproject.toml sdk/pyproject.toml
	@$(PYTHON) tools/install.py $(VENV) server

$(DEV): pyproject.toml sdk/pyproject.toml
	@$(PYTHON) tools/install.py $(VENV) dev

bench-evaluation: $(DEV)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/evaluation.py

bench-ofrep: $(DEV)
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(BIN)/python bench/ofrep.py

# A bounded headless Locust run against a local server with 2 workers; reports in loadtests/reports/.
loadtest: $(DEV)
	$(BIN)/python -m pip install --quiet -e '.[loadtest]'
	$(BIN)/python loadtests/run.py --run-time $(or $(RUN_TIME),60s)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
