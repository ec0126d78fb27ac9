# BoneOligoMet: `make demo` and `make test` work on a fresh machine from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_output

.PHONY: demo test lint format install clean dicom-tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the project's dependency list changes. pyradiomics 3.0.1 has no wheel for
# current Pythons and its sdist fails under pip's build isolation: build it against the venv's
# numpy first (--no-build-isolation), then the project finds it satisfied. PyTorch is pinned to
# the CPU build first: a looser spec on a machine without torch pulls a multi-GB CUDA build. The
# `slicer` extra is Slicer's MRML from PyPI (slicer-core) for the Slicer module's tests.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet numpy versioneer setuptools wheel
	$(BIN)/python -m pip install --quiet --no-build-isolation pyradiomics==3.0.1
	$(BIN)/python -m pip install --quiet -e '.[dev,slicer]'
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

test: $(STAMP) dicom-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
