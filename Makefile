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

test: lint typecheck
	$(BIN)/pytest -q -ra --durations=20

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
