# BoneOligoMet: `make demo` and `make test` work on a fresh machine from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_output

.PHONY: demo test lint format install clean dicom-tools oldest-python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# PyTorch: TORCH=cpu installs its CPU build ("+cpu", a 192 MB wheel, from PyTorch's CPU wheel index),
# never the multi-GB CUDA build a plain `pip install torch` resolves on Linux; TORCH=cuda takes
# PyPI's default build, which bundles CUDA. The default follows the machine: cuda where
# nvidia-smi runs, else cpu. pyradiomics comes as pyradiomics-bhklab 3.1.4 (PyPI), which builds
# on current Pythons (pyradiomics 3.0.1's sdist does not) and computes our features bit for bit
# as 3.0.1 does. The `slicer` extra is Slicer's MRML from PyPI (slicer-core) for the module's
# tests. Re-installed when pyproject.toml changes; pip shows its progress.
TORCH ?= $(shell nvidia-smi >/dev/null 2>&1 && echo cuda || echo cpu)
TORCH_VERSION := 2.13.0
ifeq ($(TORCH),cpu)
TORCH_INSTALL := "torch==$(TORCH_VERSION)+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
else
TORCH_INSTALL := "torch==$(TORCH_VERSION)"
endif

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing PyTorch $(TORCH_VERSION) ($(TORCH) build; TORCH=cpu|cuda to choose)"
	$(BIN)/python -m pip install --progress-bar on $(TORCH_INSTALL)
	$(BIN)/python -m pip install --progress-bar on -e '.[dev,slicer]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m BoneOligoMetLib.cli.demo --out $(DEMO_OUT)

# dciodvfy (Debian's dicom3tools) checks the DICOM SEG and SR the tests write. Installed with
# apt-get where we are root on Debian (CI is); elsewhere those checks skip, naming the tool.
dicom-tools:
	@command -v dciodvfy >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools \
	  >/dev/null; } || echo "note: dciodvfy not installed (apt-get install dicom3tools): its checks skip"

# The library's Slicer 5.8 subset (reading, SUV, delineation, rules, metabolics: numpy, scipy,
# SimpleITK, pydicom) on the oldest Python we support, 3.9 (Slicer 5.8's), where one is found.
OLDEST_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.9*/bin/python3.9 /usr/bin/python3.9))
OLDEST_VENV := .venv-py39

oldest-python:
	@if [ -z "$(OLDEST_PYTHON)" ]; then echo "note: no Python 3.9 here: the 3.9 smoke test skips"; \
	else [ -x $(OLDEST_VENV)/bin/python ] || { $(OLDEST_PYTHON) -m venv $(OLDEST_VENV) && \
	  $(OLDEST_VENV)/bin/python -m pip install --quiet numpy scipy SimpleITK pydicom PyYAML; } && \
	  $(OLDEST_VENV)/bin/python Testing/tools/smoke_oldest_python.py; fi

test: $(STAMP) dicom-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory oldest-python
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(OLDEST_VENV) $(DEMO_OUT) build *.egg-info
