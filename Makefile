# Two entry points for a fresh machine (see README):
#   make demo   install everything, then serve the Gradio demo on the shipped weights
#   make test   install everything (Chromium for the browser test too), then run the test suite
#   make gpu-check   (needs a CUDA GPU) CUDA tests and GPU benchmarks, see scripts/gpu_check.sh
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: install demo test browser gpu-check clean

$(STAMP): requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the headless browser test (Playwright drives it; it downloads no browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

demo: install
	$(PY) app.py --host $(HOST) --port $(PORT)

test: install browser
	$(PY) -m pytest -q tests

# On a machine with a CUDA GPU: CUDA tests, GPU speed tables, training-step benchmark (outputs in gpu-check/).
gpu-check: install
	PY=$(PY) bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV)
