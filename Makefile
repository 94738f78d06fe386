# Two commands do all the set-up: `make lab` and `make test`. Both create .venv on first use
# and reinstall only when pyproject.toml changes (the stamp file is keyed on its hash).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
PORT   ?= 8888
AS_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)  # Jupyter refuses root unless told

.PHONY: lab test lint doctor site clean-venv assignments grade

# JupyterLab opens on the lesson map (lessons/README.md, rendered) and never asks about fetching news:
# tools/jupyterlab/overrides.json holds those two settings and goes where JupyterLab reads overrides.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
lab: $(STAMP)
	mkdir -p $(LAB_SETTINGS) && cp tools/jupyterlab/overrides.json $(LAB_SETTINGS)/overrides.json
	$(BIN)/jupyter lab --port=$(PORT) $(AS_ROOT) --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/lessons/README.md

# TEST_WORKERS=N (or auto: one per core) runs the tests in N pytest-xdist processes; --dist loadscope keeps
# each test module and each notebook in one process (a notebook's cells in order on one kernel, a module's
# fixtures built once). The default, 0, runs them in this process: on a 2-core machine two workers took
# 1,361 s against 1,402 s (bench/RESULTS.md), not worth the contention that timing-sensitive cells meet.
TEST_WORKERS ?= 0
test: $(STAMP)
	$(BIN)/ruff check coursekit tests bench tools
	COURSEKIT_FAST=1 MPLBACKEND=Agg $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --durations=20  # ends with the 20 slowest steps

lint: $(STAMP)
	$(BIN)/ruff check coursekit tests bench tools

doctor: $(STAMP)
	$(BIN)/python -m coursekit doctor

# Every lesson executed in student mode (an unchanged lesson reuses its execution) and the assignments'
# student versions, as a static site in site/ (git-ignored): open site/index.html. LESSONS="01 06" builds some.
site: $(STAMP)
	$(BIN)/python tools/build_site.py$(if $(LESSONS), --lessons $(LESSONS),)

# ---------------------------------------------------------------------------- assignments (nbgrader)
# nbgrader_config.py makes solutions/ the source and assignments/ the release; solutions/README.md
# is the instructor guide. Every folder in solutions/ is one assignment.
ASSIGNMENTS := $(patsubst solutions/%/,%,$(sort $(wildcard solutions/*/)))
# GRADE_FAST=1 grades at the FAST sizes (COURSEKIT_FAST=1); GRADE_FAST=0 at the students' sizes.
GRADE_FAST ?= 1
# FORCE=1 autogrades again the submissions that were autograded before.
FORCE ?= 0
# JOBS=2 grades two submissions at a time (solutions/README.md, "Grading a class", says when it pays).
JOBS ?= 1
# nbgrader runs `alembic` (its database migrations) from PATH, so .venv/bin goes first on it.
NBGRADER = PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/nbgrader

# Regenerate assignments/<a>/ from solutions/<a>/ and store each notebook's cells, points and
# hidden tests in gradebook.db (the grader restores the test cells from there).
assignments: $(STAMP)
	@test -n "$(ASSIGNMENTS)" || { echo "no assignment folders in solutions/"; exit 1; }
	for a in $(ASSIGNMENTS); do $(NBGRADER) generate_assignment "$$a" --force --log-level=WARN || exit 1; done

# Autograde submitted/<student>/<assignment>/, write feedback/<student>/<assignment>/*.html and grades.csv.
# tools/grade.py runs nbgrader autograde, generate_feedback and export; a submission that nbgrader cannot
# grade (its kernel died, its file is not a notebook) gets 0 autograded points and
# feedback/<student>/<assignment>/autograde-error.txt, and the rest of the class is graded as usual.
grade: $(STAMP) assignments
	COURSEKIT_FAST=$(GRADE_FAST) $(BIN)/python tools/grade.py --jobs $(JOBS) $(ASSIGNMENTS)$(if $(filter 1,$(FORCE)), --force,)

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
