# Two entry points: `make demo` (the main job on defaults) and `make test` (the whole suite).
# Both create .venv and install the project on first use, so a fresh clone needs nothing else.
# The inner loop is `make check` (ruff + mypy + the unit tests, no servers, under a minute).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test unit check lint typecheck demo bench browser clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,flower]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

# The suite in TEST_PROCESSES pytest processes (pytest-xdist): its tests mostly wait (leases, sweeps,
# worker start-ups, servers), so three processes on two cores take under half the time of one.
# Every test keeps to its own schemas, queues, ports and Redis database (tests/support/servers.py).
# `make test TEST_PROCESSES=0` runs it in this one process.
TEST_PROCESSES ?= 3

test: lint typecheck
	$(BIN)/pytest -q -ra --durations=20 -n $(TEST_PROCESSES) --dist load

# No servers needed: tests/unit may not connect to MariaDB, Redis, PostgreSQL or RabbitMQ
# (tests/conftest.py refuses it); the service markers are in pyproject.toml.
unit: venv
	$(BIN)/pytest -q tests/unit

check: lint typecheck unit

demo: venv
	$(BIN)/schemabot demo

# The browser for tests/integration/test_web_page.py (skipped without it): the distribution's
# headless Chromium and its driver, never a downloaded browser. Not a prerequisite of `test`:
# it needs root and takes a minute or two.
browser:
	apt-get update && apt-get install -y chromium chromium-driver

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
