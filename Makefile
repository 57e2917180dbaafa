# Two commands set up and run everything on a fresh machine:
#   make demo   the whole pipeline, end to end
#   make test   the test suite
# Both bootstrap .venv (Python pins in pyproject.toml) and node_modules (npm pins
# in package-lock.json) on first run; later runs skip that in well under a second.
# `make lint` runs ruff and mypy as configured in pyproject.toml; CI runs it before the tests.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.sentinel-installed
NODE_STAMP := node_modules/.sentinel-installed
PYTEST_ARGS ?=

.PHONY: all setup test test-unit test-integration lint demo clean

all: test

setup: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	@echo ">> setting up $(VENV) with $(PYTHON)"
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@echo ">> installing pinned npm tools (solc, anvil, OpenZeppelin Contracts)"
	@# `npm ci`: exactly the locked versions, never a rewrite of the lock (the lock lists
	@# every platform's optional anvil binary; only this platform's is installed).
	npm ci --no-audit --no-fund --loglevel=error
	@node_modules/.bin/anvil --version >/dev/null
	@touch $@

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

demo: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache build *.egg-info
