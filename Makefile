# Set-up and everyday commands. Everything runs in a virtual environment
# (.venv) that the first command creates.
#
#   make demo            open napari with the sample tomogram and the plugin's widgets
#                        (no display: run the whole pipeline headless, results in demo-output/)
#   make demo HEADLESS=1 force the headless run
#   make test            install with test extras and run the whole suite headless
#   make bench           run the CPU benchmarks

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned so that pip does not resolve a different (and much larger) build;
# set TORCH_SPEC to the build your machine needs (e.g. a CUDA build).
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo-output
PYTEST_ARGS ?=

.PHONY: demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -e ".[testing]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/napari-dewedge demo --out $(DEMO_OUT) $(if $(HEADLESS),--headless,)

test: $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/spectra_remask.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build src/*.egg-info .pytest_cache
