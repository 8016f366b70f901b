# Set-up and everyday commands. Everything runs in a virtual environment
# (.venv) that the first command creates.
#
#   make demo            open napari with the sample tomogram and the plugin's widgets
#                        (no display: run the whole pipeline headless, results in demo-output/)
#   make demo HEADLESS=1 force the headless run
#   make test            install with test extras and run the whole suite headless (lint included)
#   make lint            ruff alone
#   make bench           run the CPU benchmarks

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned so that pip does not resolve a different (and much larger) build;
# set TORCH_SPEC to the build your machine needs (e.g. a CUDA build).
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo-output
PYTEST_ARGS ?=

# napari's canvas needs OpenGL, which Qt's offscreen platform lacks: headless
# tests run on a virtual screen (Xvfb, Mesa software rendering), started by the
# pytest-xvfb plugin. Where Xvfb is missing and apt-get can run, it is installed.
SCREEN_PKGS := xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 \
	libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 libxcb-shape0 libxcb-randr0 libxcb-xkb1

.PHONY: demo test lint bench clean screen-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null

# `[all]` brings the Qt binding (PyQt6); install napari-dewedge without it into an
# environment that already has napari with another binding.
$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[all]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -e ".[all,testing]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/napari-dewedge demo --out $(DEMO_OUT) $(if $(HEADLESS),--headless,)

screen-deps:
	@if command -v Xvfb >/dev/null 2>&1 && { ! command -v dpkg >/dev/null 2>&1 || dpkg -s $(SCREEN_PKGS) >/dev/null 2>&1; }; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing a virtual screen for headless Qt/OpenGL tests: $(SCREEN_PKGS)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SCREEN_PKGS)) >/dev/null \
			|| echo "warning: could not install Xvfb; tests that need a napari canvas will be skipped"; \
	else echo "note: Xvfb not found; tests that need a napari canvas will be skipped (install xvfb to run them)"; fi

test: $(VENV)/.installed-test screen-deps
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	$(PY) benchmarks/spectra_remask.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build src/*.egg-info .pytest_cache
