# Two commands for a fresh machine with Python 3.11+ and make:
#   make run    install into .venv and start the server on embedded PostgreSQL
#   make test   install into .venv and run lint, type checks and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest install browser loadtest clean bench-evaluation bench-ofrep

run: $(STAMP)
	$(BIN)/flagd serve

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) browser
	$(BIN)/pytest $(PYTEST_ARGS)

# The results pages are tested in Debian's chromium: installed here when missing and running as root
# (elsewhere those tests skip with a message, and fail under CI=true).
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; fi

install: $(STAMP)

$(STAMP): pyproject.toml sdk/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "flagd needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./sdk -e '.[dev]'
	touch $(STAMP)

bench-evaluation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/evaluation.py

bench-ofrep: $(STAMP)
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(BIN)/python bench/ofrep.py

# A bounded headless Locust run against a local server with 2 workers; reports in loadtests/reports/.
loadtest: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[loadtest]'
	$(BIN)/python loadtests/run.py --run-time $(or $(RUN_TIME),60s)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
