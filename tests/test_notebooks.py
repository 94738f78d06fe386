"""Every committed notebook is clean (no outputs), valid, runs in the course kernel, and has a lesson's outline.

nbval executes the notebooks themselves (see pyproject.toml); these tests check what is committed.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(
    p for folder in ("lessons", "solutions", "assignments") for p in (ROOT / folder).rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts
)
LESSONS = sorted((ROOT / "lessons").glob("*.ipynb"))


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_there_are_lessons():
    assert LESSONS, "lessons/ holds no notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_valid_and_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"{path.name}: cells {with_outputs} have outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_uses_the_course_kernel(path):
    spec = nbformat.read(path, as_version=4).metadata.get("kernelspec", {})
    assert spec.get("name") == "coursekit", f"{path.name}: kernelspec {spec} should name the 'coursekit' kernel"
    assert spec.get("language") == "python" and spec.get("display_name")


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lesson_has_the_course_outline(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: lessons are named NN_name.ipynb"
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "first cell: the title"
    assert "By the end of this lesson" in nb.cells[0].source, "the first cell states the objectives"
    assert re.search(r"^## Exercises", markdown, re.M), "a lesson ends with exercises"
    assert re.search(r"^## What we learned", markdown, re.M), "a lesson sums up what it taught"
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(code), "at least as many prose cells as code"
    assert any(re.search(r"^\s*assert ", src, re.M) for src in code), "a lesson asserts what it claims"
