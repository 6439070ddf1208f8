# Two entry points for a fresh machine (see README):
#   make demo   install everything, then serve the Gradio demo on the shipped weights
#   make test   install everything (Chromium for the browser test too), then run the test suite
#   make gpu-check   (needs a CUDA GPU) CUDA tests and GPU benchmarks, see tools/gpu_check.sh
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: install demo test browser gpu-check clean

# pyproject.toml declares the dependencies (and the demo/test extras); requirements.txt pins the tested
# versions and is applied as constraints; BasicSR goes in without its own metadata's dependencies
# (requirements-nodeps.txt says why). The same two pip commands as the README's.
$(STAMP): pyproject.toml requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77"
	$(PY) -m pip install --quiet --no-build-isolation -c requirements.txt -e ".[demo,test]"
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
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
	$(PY) -m pytest -q -n auto tests

# On a machine with a CUDA GPU: CUDA tests, GPU speed tables, training-step benchmark (outputs in gpu-check/).
gpu-check: install
	PY=$(PY) bash tools/gpu_check.sh

clean:
	rm -rf $(VENV)
