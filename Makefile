# Two commands do all the set-up: `make lab` and `make test`. Both create .venv on first use
# and reinstall only when pyproject.toml changes (the stamp file is keyed on its hash).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
PORT   ?= 8888
AS_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)  # Jupyter refuses root unless told

.PHONY: lab test lint doctor clean-venv

lab: $(STAMP)
	$(BIN)/jupyter lab --port=$(PORT) $(AS_ROOT) --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/lessons

test: $(STAMP)
	$(BIN)/ruff check coursekit tests bench
	COURSEKIT_FAST=1 MPLBACKEND=Agg $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check coursekit tests bench

doctor: $(STAMP)
	$(BIN)/python -m coursekit doctor

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"coursekit needs Python 3.11, found {sys.version.split()[0]} at {sys.executable}: install 3.11 or run make PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install torch==2.9.1 torchvision==0.24.1
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m pip install --no-deps tinysoundfont==0.3.7
	$(BIN)/python -m ipykernel install --sys-prefix --name coursekit --display-name "Python 3 (coursekit)"
	rm -f $(VENV)/.installed-*
	touch $@

clean-venv:
	rm -rf $(VENV)
