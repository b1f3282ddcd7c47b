# Two commands on a fresh machine (Python 3.11 and the package registries are enough):
#   make run    set everything up, then run the fleet on the embedded broker (edgebus up)
#   make test   set everything up, then lint, type-check and run the whole test suite
# Set-up happens once, into .venv, and again whenever pyproject.toml changes.

VENV := .venv
PYTHON := $(VENV)/bin/python
READY := $(VENV)/.installed
# The suite mostly waits (on brokers, child processes, deadlines), so three workers run it
# in well under half the time of one, even on two cores; each test keeps its own timeout.
TEST_WORKERS ?= 3

.PHONY: run test setup

run: $(READY)
	$(VENV)/bin/edgebus up

test: $(READY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS)

setup: $(READY)

# torch first and pinned: any other spec pulls the multi-gigabyte CUDA build.
$(READY): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e ".[train,postgres,dev]"
	touch $@
