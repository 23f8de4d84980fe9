# `make setup` builds .venv from the lock file; `make run` builds the whole pipeline for the newest ontology release
# (offline: EDUGRAPH_ONTOLOGY_REPO=<local mirror>); `make test` runs the test suite (what CI runs).
PYTHON ?= python3.11
VENV := .venv
PIP := $(VENV)/bin/python -m pip

.PHONY: setup run test lint lock bench

setup:
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.lock
	$(PIP) install --quiet --no-deps --no-build-isolation -e .

# The whole graph on the defaults (tiny profile, local launcher, sample content) in the Dagster instance of this folder
# (DAGSTER_HOME, default: here, with ./dagster.yaml), then the artifacts, evaluation, an example, lineage, UI hint.
run:
	$(VENV)/bin/edugraph run

PYTEST_ARGS ?=
# Two workers (pytest-xdist), one test file per worker at a time so a file's module fixtures are built once; the ten
# slowest tests are listed at the end.
TEST_WORKERS ?= 2

test:
	$(VENV)/bin/python -m pytest edugraph_pipeline_tests -m "not slow" -n $(TEST_WORKERS) --dist loadfile \
		--durations=10 $(PYTEST_ARGS)

lint:
	$(VENV)/bin/ruff check edugraph_pipeline edugraph_pipeline_tests bench

# Re-pin the environment after changing pyproject.toml's dependencies.
lock:
	$(PIP) install --quiet -e ".[test]"
	$(PIP) freeze --exclude-editable | grep -v '^edugraph-pipeline' > requirements.lock

bench:
	for script in bench/*.py; do $(VENV)/bin/python $$script || exit 1; done
