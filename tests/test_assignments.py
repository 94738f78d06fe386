"""The nbgrader pipeline: assignments/ is what `make assignments` generates, and the grader scores as it should.

Everything runs in temporary copies of the course (nbgrader_config.py, solutions/, assignments/), never in
the repository. The grading checks are written once for every assignment and read what each assignment must
show from its case file, tests/cases_<assignment>.py: its test cells and points, its written answers, what
its hidden tests compare with, its FAST sizes, and broken submissions with the tests each must fail. For
each assignment, nbgrader releases it in a course of its own and tools/grade.py grades one batch with
COURSEKIT_FAST=1 and a short cell timeout, as `make grade` does: the solution (full marks), the unmodified
student notebook (zero) and the broken ones (exactly their tests lost); feedback and grades.csv follow.
The expensive cases run once, in a1's batch: an infinite loop stopped by the timeout, two submissions that
nbgrader cannot grade (a kernel killed by os._exit, a file that is not a notebook), four hostile ones that
attack the grader (all contained by the sandbox of tools/sandbox_kernel.py), and the hidden-test switch
of the feedback.
"""

from __future__ import annotations

import csv
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from unittest import mock

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin: nbgrader, and alembic, which nbgrader calls from PATH
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and not p.name.startswith("."))
A1 = "a1_vae_mnist"
TIMEOUT_S = 45  # cell timeout in the temporary course; the FAST solutions' slowest cells take seconds when idle
COMMAND_TIMEOUT_S = 900  # a hung nbgrader fails the test instead of hanging CI
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def _load_case(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = {case.NAME: case for case in map(_load_case, sorted((ROOT / "tests").glob("cases_*.py")))}

# Hostile submissions: the solution with one cell in front that attacks the grader. Each attack prints
# ESCAPED if it worked and "blocked <error>" if the sandbox stopped it; the solution after it must still
# score full marks. {course} is the temporary course folder, {repo} this repository.
HOSTILE = {
    "writes_outside": (
        "for target in ['{course}/written_by_a_student.txt', '{repo}/written_by_a_student.txt', "
        "'/var/tmp/written_by_a_student.txt']:\n"
        "    try:\n"
        "        open(target, 'w').write('x'); print('ESCAPED', target)\n"
        "    except OSError as error:\n"
        "        print('blocked', type(error).__name__)\n"
    ),
    "reads_solutions": (
        "for target in ['{course}/solutions/{a1}/{a1}.ipynb', '{course}/submitted/solution/{a1}/{a1}.ipynb', "
        "'{course}/autograded/solution/{a1}/{a1}.ipynb', '{repo}/solutions/{a1}/{a1}.ipynb']:\n"
        "    try:\n"
        "        text = open(target).read()\n"
        "        print('ESCAPED' if 'def ' in text else 'blocked empty', target)\n"
        "    except OSError as error:\n"
        "        print('blocked', type(error).__name__)\n"
    ),
    "edits_gradebook": (
        "import sqlite3\n"
        "try:\n"
        "    with sqlite3.connect('{course}/gradebook.db') as db:\n"
        "        db.execute('DELETE FROM grade'); print('ESCAPED delete')\n"
        "except sqlite3.Error as error:\n"
        "    print('blocked', type(error).__name__)\n"
        "try:\n"
        "    open('{course}/gradebook.db', 'r+b').write(b'\\0' * 4096); print('ESCAPED overwrite')\n"
        "except OSError as error:\n"
        "    print('blocked', type(error).__name__)\n"
    ),
    "fills_disk_and_memory": (
        "import os\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(64):  # 4 GiB asked for, in files of 64 MiB\n"
        "        with open(f'fill_{{i}}.bin', 'wb') as f:\n"
        "            f.write(b'0' * (64 << 20))\n"
        "        written += 64\n"
        "    print('ESCAPED disk', written)\n"
        "except OSError as error:\n"
        "    print('blocked', type(error).__name__, 'after', written, 'MiB')\n"
        "for i in range(64):\n"
        "    if os.path.exists(f'fill_{{i}}.bin'):\n"
        "        os.remove(f'fill_{{i}}.bin')\n"
        "try:\n"
        "    hoard = bytearray(32 << 30); print('ESCAPED memory')\n"
        "except MemoryError as error:\n"
        "    print('blocked', type(error).__name__)\n"
    ),
}




# ----------------------------------------------------------------------------- helpers
def _nbgrader_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        JUPYTER_CONFIG_DIR=str(root / ".jupyter"),  # no nbgrader config from ~/.jupyter
        COURSEKIT_FAST="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def _nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` in the course folder ``root``; fail with its log if it exits non-zero."""
    result = subprocess.run(
        [str(BIN / "nbgrader"), *args], cwd=root, env=_nbgrader_env(root),
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
    )
    if result.returncode != 0:
        log = f"{result.stdout}\n{result.stderr[-6000:]}"
        pytest.fail(f"nbgrader {' '.join(args)} exited with {result.returncode}:\n{log}")
    return result


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _without_markers(source: str) -> str:
    """A solution cell as a student would leave it: the instructor's code, without nbgrader's markers."""
    return "\n".join(line for line in source.split("\n") if line.strip() not in SOLUTION_MARKERS)


def _completed(release: nbformat.NotebookNode, source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release notebook with every answer cell filled in from the source notebook."""
    answers = {_grade_id(c): c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    filled = set()
    for cell in nb.cells:
        if _grade_id(cell) in answers:
            cell.source = _without_markers(answers[_grade_id(cell)])
            filled.add(_grade_id(cell))
    assert filled == set(answers), f"answer cells {sorted(set(answers) - filled)} are missing from the release"
    return nb


def _edit(nb: nbformat.NotebookNode, grade_id: str, change) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cells = [c for c in nb.cells if _grade_id(c) == grade_id]
    assert len(cells) == 1, f"no single cell {grade_id!r}"
    cells[0].source = change(cells[0].source)
    return nb



def _change(text: str, old_new: tuple[str, str]) -> str:
    old, new = old_new
    assert text.count(old) == 1, f"{old!r} no longer occurs once in the solution: update the case file"
    return text.replace(old, new)


# Submissions that nbgrader cannot autograde: the change to the solution notebook and words the reason must use.
# "crashed" sorts first, so nbgrader grades it first and must go on with the others after its kernel died.
FAILING = {
    "crashed": (lambda nb: _edit(nb, "kl_to_standard_normal", lambda s: "import os\nos._exit(1)\n\n" + s),
                "the Python kernel died"),
    "not_a_notebook": (lambda nb: nbformat.writes(nb)[:200], "not a readable notebook"),
}


def _grade_script(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run tools/grade.py, the grading that `make grade` runs, in the course folder ``root``."""
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "grade.py"), *args], cwd=root, env=_nbgrader_env(root),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=COMMAND_TIMEOUT_S,
    )



def _source(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)


def _cell(nb: nbformat.NotebookNode, grade_id: str):
    cells = [c for c in nb.cells if _grade_id(c) == grade_id]
    assert len(cells) == 1, f"no single cell {grade_id!r}"
    return cells[0]


def _autograded_cells(scores: dict) -> dict[str, float]:
    """grade_id -> points of the autograded (code) test cells."""
    return {name: g["max"] for name, g in scores.items() if g["type"] == "code"}


def _autograded_nb(root: Path, student: str, name: str = A1) -> nbformat.NotebookNode:
    return nbformat.read(root / "autograded" / student / name / f"{name}.ipynb", as_version=4)


def _new_course(tmp_path_factory, label: str, names: list[str]) -> Path:
    """A temporary course holding ``names`` with the test's short cell timeout, released by nbgrader."""
    root = tmp_path_factory.mktemp(label)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    with open(root / "nbgrader_config.py", "a") as config:
        config.write(f"\n# added by tests/test_assignments.py\nc.Execute.timeout = {TIMEOUT_S}\n")
    for name in names:
        shutil.copytree(ROOT / "solutions" / name, root / "solutions" / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        _nbgrader(root, "generate_assignment", name, "--force", "--log-level=WARN")
    return root


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A temporary copy of the course in which `nbgrader generate_assignment --force` regenerated assignments/."""
    return _new_course(tmp_path_factory, "course", ASSIGNMENTS)


_GRADED: dict[str, dict] = {}  # assignment -> its graded batch: each is graded once per test session


def _graded_once(tmp_path_factory, name: str) -> dict:
    """One assignment released in a course of its own and one batch of submissions graded as `make grade` does."""
    if name in _GRADED:
        return _GRADED[name]
    case = CASES[name]
    root = _new_course(tmp_path_factory, f"course_{name}", [name])
    source = nbformat.read(root / "solutions" / name / f"{name}.ipynb", as_version=4)
    release = nbformat.read(root / "assignments" / name / f"{name}.ipynb", as_version=4)
    solution = _completed(release, source)
    submissions = {"solution": solution, "unmodified": release}
    for student, (cell, old_new, _) in case.BROKEN.items():
        submissions[student] = _edit(solution, cell, lambda text, old_new=old_new: _change(text, old_new))
    if name == A1:  # the expensive cases, once
        submissions |= {student: change(solution) for student, (change, _) in FAILING.items()}
        for student, attack in HOSTILE.items():
            nb = nbformat.from_dict(json.loads(json.dumps(solution)))
            nb.cells.insert(0, nbformat.v4.new_code_cell(attack.format(course=root, repo=ROOT, a1=A1)))
            submissions[student] = nb
    for student, nb in submissions.items():
        folder = root / "submitted" / student / name
        folder.mkdir(parents=True)
        (folder / f"{name}.ipynb").write_text(nb if isinstance(nb, str) else nbformat.writes(nb))

    # nbgrader autograde, generate_feedback and export; a1's batch (its failing and hostile submissions
    # included) two submissions at a time, as `make grade JOBS=2` does, the others in one nbgrader batch
    grading = _grade_script(root, *(["--jobs", "2"] if name == A1 else []), name)
    if grading.returncode != 0:
        pytest.fail(f"tools/grade.py {name} exited with {grading.returncode}:\n{grading.stdout[-8000:]}")

    from nbgrader.api import Gradebook

    scores = {}
    with mock.patch.dict(os.environ, {"PATH": _nbgrader_env(root)["PATH"]}):  # Gradebook runs alembic
        with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
            for student in submissions:
                notebook = gb.find_submission_notebook(name, name, student)
                scores[student] = {
                    g.name: {"auto": g.auto_score, "max": g.max_score, "manual": g.needs_manual_grade,
                             "type": g.cell_type}
                    for g in notebook.grades
                }
    with open(root / "grades.csv", newline="") as f:
        csv_rows = {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == name}
    _GRADED[name] = {"name": name, "case": case, "root": root, "scores": scores, "csv": csv_rows,
                     "log": grading.stdout}
    return _GRADED[name]


@pytest.fixture(scope="module", params=sorted(CASES))
def graded(request, tmp_path_factory) -> dict:
    """Each assignment's graded batch in turn."""
    return _graded_once(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def graded_a1(tmp_path_factory) -> dict:
    """a1's graded batch, with the failing and hostile submissions."""
    return _graded_once(tmp_path_factory, A1)


# ----------------------------------------------------------------------------- the release
def test_nbval_does_not_run_the_student_notebooks():
    testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    assert not any(p.strip("/").split("/")[0] == "assignments" for p in testpaths), (
        f"pytest testpaths {testpaths} include assignments/: unmodified student notebooks fail by design"
    )


def test_every_assignment_is_released():
    assert A1 in ASSIGNMENTS
    for name in ASSIGNMENTS:
        notebooks = sorted(p.name for p in (ROOT / "solutions" / name).glob("*.ipynb"))
        assert notebooks, f"solutions/{name}/ holds no notebook"
        for notebook in notebooks:
            released = ROOT / "assignments" / name / notebook
            assert released.is_file(), f"assignments/{name}/{notebook} is missing: run make assignments"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_assignments_match_what_make_assignments_generates(course, name):
    committed, fresh = ROOT / "assignments" / name, course / "assignments" / name

    def files(folder):
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    assert files(committed) == files(fresh), "assignments/ holds other files than nbgrader makes: run make assignments"
    for path in fresh.rglob("*.ipynb"):
        ours = json.loads((committed / path.relative_to(fresh)).read_text())
        theirs = json.loads(path.read_text())
        assert len(ours["cells"]) == len(theirs["cells"]), f"{path.name}: cell count differs: run make assignments"
        for i, (a, b) in enumerate(zip(ours["cells"], theirs["cells"], strict=True)):
            for key in ("cell_type", "id", "metadata", "source"):
                assert a.get(key) == b.get(key), f"{path.name} cell {i}: {key} differs: run make assignments"
        assert ours == theirs, f"{path.name}: notebook differs from the generated one: run make assignments"
    for path in fresh.rglob("*"):
        if path.is_file() and path.suffix != ".ipynb":
            assert (committed / path.relative_to(fresh)).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_hides_solutions_and_hidden_tests(name):
    for path in (ROOT / "assignments" / name).glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{path.name} leaks {marker!r}"
        source = nbformat.read(ROOT / "solutions" / name / path.name, as_version=4)
        source_text = "\n".join(c.source for c in source.cells)
        hidden = re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", source_text, re.S)
        assert all(block.strip() not in text for block in hidden), f"{path.name} shows hidden tests"
        answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert answers, f"{path.name} has no answer cells"
        for cell in answers:
            stub = "raise NotImplementedError()" if cell.cell_type == "code" else "YOUR ANSWER HERE"
            assert stub in cell.source, f"{path.name} cell {_grade_id(cell)} is not a stub"



@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_assignment_has_a_case_file(name):
    assert name in CASES, f"tests/cases_{name[:2]}.py is missing: it says what grading {name} must show"


@pytest.mark.parametrize("name", sorted(CASES))
def test_assignment_has_visible_and_hidden_tests_and_manual_answers(name):
    nb, case = _source(name), CASES[name]
    assert nb.metadata.kernelspec.name == "coursekit"
    graded = {_grade_id(c): c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    tests = {gid: c.metadata.nbgrader["points"] for gid, c in graded.items() if c.cell_type == "code"}
    answers = {gid: c.metadata.nbgrader["points"] for gid, c in graded.items()
               if c.cell_type == "markdown" and c.metadata.nbgrader.get("solution")}
    assert tests == case.TESTS and answers == case.ANSWERS
    for gid in case.TESTS:
        cell = graded[gid]
        assert cell.metadata.nbgrader["locked"], f"{gid} is not locked"
        visible, _, hidden = cell.source.partition("### BEGIN HIDDEN TESTS")
        assert re.search(r"^assert ", visible, re.M), f"{gid} has no visible test"
        hidden, end, _ = hidden.partition("### END HIDDEN TESTS")
        assert end and re.search(r"^\s*assert ", hidden, re.M), f"{gid} has no hidden test"
        for reference in case.REFERENCES.get(gid, ()):
            assert reference in hidden, f"{gid}: the hidden test no longer uses {reference}"
    for gid in case.ANSWERS:  # the source holds a model answer and the grading notes
        assert "*Grading:" in graded[gid].source, f"{gid} has no grading notes"
    intro = nb.cells[0]
    assert _grade_id(intro) == "intro" and intro.metadata.nbgrader["locked"]
    assert "By the end of this assignment" in intro.source, "the first cell states the objectives"
    total = sum(case.TESTS.values()) + sum(case.ANSWERS.values())
    assert f"**Grading ({total} points)**" in intro.source, "the intro states another total"
    table = [int(points) for points in re.findall(r"^\| \d \| .* \| (\d+) \|$", intro.source, re.M)]
    assert len(table) == case.INTRO_ROWS and sum(table) == total, f"the intro's table gives {table}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_sizes_follow_fast_mode(name):
    setup = _cell(_source(name), "setup").source
    for size in CASES[name].SIZES:
        assert re.search(size, setup, re.M), f"{name}'s setup cell has no line matching {size!r}"


# ----------------------------------------------------------------------------- grading, every assignment
def test_solution_scores_full_marks(graded):
    scores, case = graded["scores"]["solution"], graded["case"]
    assert _autograded_cells(scores) == case.TESTS, "the gradebook holds other test cells or points"
    lost = {gid: g for gid, g in scores.items() if g["type"] == "code" and g["auto"] != g["max"]}
    assert not lost, f"the solution loses points in {lost}; see {graded['root'] / 'autograded' / 'solution'}"
    answers = {gid: g for gid, g in scores.items() if g["type"] == "markdown"}
    assert set(answers) == set(case.ANSWERS) and all(g["manual"] for g in answers.values()), (
        "the written answers wait for a human grader"
    )


def test_unmodified_notebook_scores_zero(graded):
    scores = graded["scores"]["unmodified"]
    assert set(_autograded_cells(scores)) == set(graded["case"].TESTS)
    earned = {gid: g["auto"] for gid, g in scores.items() if g["auto"]}
    assert not earned, f"the unmodified student notebook earns points in {earned}"
    assert not any(g["manual"] for g in scores.values()), "unanswered questions need no manual grading"
    assert float(graded["csv"]["unmodified"]["score"]) == 0


def test_broken_submissions_lose_exactly_the_broken_tests(graded):
    case = graded["case"]
    for student, (_, _, failing) in case.BROKEN.items():
        scores = graded["scores"][student]
        expected = {gid: 0.0 if gid in failing else points for gid, points in case.TESTS.items()}
        got = {gid: scores[gid]["auto"] for gid in expected}
        assert got == expected, f"{student}: scores per test cell {got}, expected {expected}"


def test_grades_csv_and_feedback_have_every_student(graded):
    rows, name = graded["csv"], graded["name"]
    assert set(rows) == set(graded["scores"])
    for student, scores in graded["scores"].items():
        score = sum(g["auto"] or 0 for g in scores.values())
        total = sum(g["max"] for g in scores.values())
        assert total == sum(graded["case"].TESTS.values()) + sum(graded["case"].ANSWERS.values())
        assert float(rows[student]["score"]) == pytest.approx(score)
        assert float(rows[student]["max_score"]) == pytest.approx(total)
        if student in FAILING:
            continue  # no HTML feedback: see test_ungradable_submission_gets_zero_and_a_reason
        page = graded["root"] / "feedback" / student / name / f"{name}.html"
        assert page.is_file(), f"no feedback for {student}"
        assert re.search(rf"Score:\s*{score:g}(\.0+)?\s*/\s*{total:g}", page.read_text()), (
            f"{student}: the feedback does not show the score {score} / {total}"
        )


# ----------------------------------------------------------------------------- grading, once (in a1's batch)
def test_infinite_loop_was_stopped_by_the_cell_timeout(graded_a1):
    nb = _autograded_nb(graded_a1["root"], "infinite_loop")
    errors = {_grade_id(c): [o.ename for o in c.outputs if o.output_type == "error"]
              for c in nb.cells if c.cell_type == "code"}
    assert "CellTimeoutError" in errors["reparameterize"], f"no timeout stopped the loop: {errors['reparameterize']}"
    assert f"Timeout waiting for execute reply ({TIMEOUT_S}s)" in graded_a1["log"], "the short timeout was not used"
    assert errors["test_kl_to_standard_normal"] == [], "the cells after the timeout ran on"


@pytest.mark.parametrize("student", sorted(HOSTILE))
def test_hostile_submission_is_contained_and_still_graded(graded_a1, student):
    attack = _autograded_nb(graded_a1["root"], student).cells[0]
    printed = "".join(o.get("text", "") for o in attack.outputs)
    assert "ESCAPED" not in printed and "blocked" in printed, f"{student}: the attack printed {printed!r}"
    scores = graded_a1["scores"][student]
    lost = {name: g for name, g in scores.items() if g["type"] == "code" and g["auto"] != g["max"]}
    assert not lost, f"{student}: the sandbox broke the solution after the attack: {lost}"


def test_hostile_submissions_left_no_trace(graded_a1):
    for folder in (graded_a1["root"], ROOT, Path("/var/tmp")):
        assert not (folder / "written_by_a_student.txt").exists(), f"a submission wrote into {folder}"
    attack = _autograded_nb(graded_a1["root"], "fills_disk_and_memory").cells[0]
    printed = "".join(o.get("text", "") for o in attack.outputs)
    written = int(re.search(r"after (\d+) MiB", printed).group(1))
    assert 0 < written <= 1024, f"the disk filler wrote {written} MiB: the sandbox's RAM disk holds 1024"
    assert not list((graded_a1["root"] / "autograded" / "fills_disk_and_memory").rglob("fill_*.bin"))


def _hidden_test_lines() -> list[str]:
    """Lines of a1's hidden tests that appear nowhere in the released notebook."""
    source = "\n".join(c.source for c in nbformat.read(ROOT / "solutions" / A1 / f"{A1}.ipynb", as_version=4).cells)
    release = "\n".join(c.source for c in nbformat.read(ROOT / "assignments" / A1 / f"{A1}.ipynb", as_version=4).cells)
    blocks = re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", source, re.S)
    return [line.strip() for block in blocks for line in block.split("\n") if len(line.strip()) > 12
            and line.strip() not in release]


def test_feedback_withholds_hidden_tests_but_shows_their_result(graded_a1):
    hidden = _hidden_test_lines()
    assert hidden, "a1 has no hidden test lines to withhold"
    for student in ("solution", "raises"):
        page = (graded_a1["root"] / "feedback" / student / A1 / f"{A1}.html").read_text()
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        shown = [line for line in hidden if line in text]
        assert not shown, f"{student}'s feedback shows hidden tests: {shown[:3]}"
    page = (graded_a1["root"] / "feedback" / "raises" / A1 / f"{A1}.html").read_text()
    assert "details withheld, this test cell has hidden tests" in page  # the failing hidden test, unquoted


def test_feedback_shows_hidden_tests_when_the_instructor_says_so(graded_a1):
    env = dict(_nbgrader_env(graded_a1["root"]), COURSEKIT_FEEDBACK_HIDDEN_TESTS="show")
    subprocess.run([str(BIN / "nbgrader"), "generate_feedback", A1, "--force", "--student=solution",
                    "--CourseDirectory.feedback_directory=feedback_shown"], cwd=graded_a1["root"], env=env,
                   check=True, capture_output=True, timeout=COMMAND_TIMEOUT_S)
    page = (graded_a1["root"] / "feedback_shown" / "solution" / A1 / f"{A1}.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert all(line in text for line in _hidden_test_lines())



@pytest.mark.parametrize(("argv", "isolation", "kernel"), [
    (["/venv/bin/nbgrader", "autograde", A1], "on", "coursekit-sandbox"),
    (["/venv/bin/nbgrader", "autograde", A1], "off", "coursekit"),
    (["/venv/bin/nbgrader", "validate", "x.ipynb"], "on", "coursekit"),  # students' Validate button
    (["/venv/bin/jupyter-lab"], "on", "coursekit"),
])
def test_only_autograding_runs_in_the_sandbox(argv, isolation, kernel):
    from traitlets.config.loader import PyFileConfigLoader

    with mock.patch.object(sys, "argv", argv), mock.patch.dict(os.environ, {"COURSEKIT_GRADE_ISOLATION": isolation}):
        config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert config.Execute.kernel_name == kernel


def test_make_grade_runs_the_tested_script():
    recipe = re.search(r"^grade:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "no grade target in the Makefile"
    assert "tools/grade.py" in recipe.group(1), f"make grade does not run tools/grade.py:\n{recipe.group(1)}"


@pytest.mark.parametrize("student", sorted(FAILING))
def test_ungradable_submission_gets_zero_and_a_reason(graded_a1, student):
    scores, root, words = graded_a1["scores"][student], graded_a1["root"], FAILING[student][1]
    assert scores and all(g["auto"] == 0 and not g["manual"] for g in scores.values()), (
        f"{student}: every cell should have 0 autograded points and need no manual grade: {scores}"
    )
    row = graded_a1["csv"][student]
    assert float(row["score"]) == 0 and float(row["max_score"]) == sum(g["max"] for g in scores.values()), row
    assert not (root / "autograded" / student / A1).exists(), "nbgrader left a partly graded notebook"
    note = root / "feedback" / student / A1 / "autograde-error.txt"
    assert note.is_file(), f"no {note.name} for {student}: the instructor cannot tell why it scored 0"
    text = note.read_text()
    assert text.startswith(f"Assignment {A1}, student {student}: NOT AUTOGRADED, 0 autograded points."), text[:300]
    assert words in text and f"submitted/{student}/{A1}/{A1}.ipynb" in text, text[:1000]
    summary = graded_a1["log"].rpartition("NOT AUTOGRADED")[2]
    assert re.search(rf"^  {student}/{A1}: .*{words}", summary, re.M), f"make grade does not report {student}"
    assert f"details: feedback/{student}/{A1}/autograde-error.txt" in summary


def _grade_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grade_tool", ROOT / "tools" / "grade.py")
    grade_tool = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = grade_tool  # dataclasses look their module up
    spec.loader.exec_module(grade_tool)
    return grade_tool


@pytest.mark.parametrize("preset", [None, "3"])
def test_parallel_grading_caps_each_notebooks_threads(monkeypatch, preset):
    grade_tool = _grade_tool()
    environments = []

    class FakeNbgrader:  # records the environment of each nbgrader command instead of running it
        def __init__(self, argv, env, **kwargs):
            environments.append((argv, env))
            self.stdout = iter(())

        def wait(self):
            return 0

    monkeypatch.setattr(grade_tool.subprocess, "Popen", FakeNbgrader)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if preset is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, preset)
    cores = len(os.sched_getaffinity(0))
    status, _ = grade_tool.autograde(None, A1, ["ann", "bob", "cy"], force=True, jobs=2)
    assert status == 0 and sorted(argv[argv.index("--student") + 1] for argv, _ in environments) == ["ann", "bob", "cy"]
    expected = preset or str(max(1, cores // 2))  # the instructor's setting wins
    assert {(env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"]) for _, env in environments} == {(expected, expected)}

    environments.clear()
    grade_tool.autograde(None, A1, ["ann"], force=True, jobs=1)  # one batch: torch's own default
    assert environments[0][1].get("OMP_NUM_THREADS") == preset


def test_a_failure_not_known_to_come_from_the_notebook_points_at_the_setup(tmp_path):
    from nbgrader.coursedir import CourseDirectory

    grade_tool = _grade_tool()
    coursedir = CourseDirectory(root=str(tmp_path))
    path = coursedir.format_path(coursedir.submitted_directory, "jdoe", A1)
    log = (  # nbgrader's log of a submission that failed (as for "crashed"), for a reason of the setup
        f"[AutogradeApp | ERROR] There was an error processing assignment: {path}\n"
        "[AutogradeApp | ERROR] Traceback (most recent call last):\n"
        '      File "nbclient/client.py", line 600, in async_start_new_kernel\n'
        "    jupyter_client.kernelspec.NoSuchKernel: No such kernel named coursekit\n"
        "    \n"
        f"[AutogradeApp | WARNING] Removing failed assignment: {path}\n"
    )
    failure = grade_tool.failure_from_log(log, coursedir, "jdoe", A1)
    assert not failure.own_fault and "NoSuchKernel: No such kernel named coursekit" in failure.reason, failure
    unlogged = grade_tool.failure_from_log(log, coursedir, "someone_else", A1)
    assert not unlogged.own_fault and "no error message found" in unlogged.reason, unlogged




# ----------------------------------------------------------------------------- what is particular to a3 and a5
def test_a3_training_uses_the_shipped_first_model():
    nb = _source("a3_hierarchical_vae")
    train = _cell(nb, "train").source
    assert "first = load_waveform_vae()" in train, "part 5 must encode the loops with lesson 05's shipped model"
    assert "seed=0" in train and "seed=1" in train, "training and held-out loops come from different seeds"
    student_code = "\n".join(c.source.split("### BEGIN HIDDEN TESTS")[0] for c in nb.cells if c.cell_type == "code")
    assert "build_audio_vae" not in student_code, "an untrained stand-in for the first model is left in"
    registry = json.loads((ROOT / "checkpoints" / "registry.json").read_text())
    assert "waveform_vae" in registry and (ROOT / "checkpoints" / "waveform_vae.pt").is_file(), (
        "checkpoints/waveform_vae.pt, which A3 loads, is not shipped"
    )


A5_CREPE_BUDGET = 100  # CREPE costs about 0.1 s per clip on one core: at most this many clips at full size


def test_a5_measures_little_and_trains_nothing():
    nb = _source("a5_evaluating_generators")
    pitch = re.search(r"^N_PITCH = config\.pick\(full=(\d+), fast=(\d+)\)", _cell(nb, "setup").source, re.M)
    assert 3 * int(pitch.group(1)) <= A5_CREPE_BUDGET, "CREPE measures three sets: keep them to about 100 clips"
    generators = _cell(nb, "generators").source
    for needed in ('note_clips("test"', 'note_clips("valid"', 'load_pretrained("family_classifier"'):
        assert needed in generators, f"the generators cell no longer uses {needed}"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"\bfit\(|\.backward\(|optim\.", code), "the assignment trains nothing"
    registry = json.loads((ROOT / "checkpoints" / "registry.json").read_text())
    assert "family_classifier" in registry and (ROOT / "checkpoints" / "family_classifier.pt").is_file(), (
        "checkpoints/family_classifier.pt, which A5 loads, is not shipped"
    )
    kl = next(c.source for c in nb.cells if "## Part 3" in c.source)
    assert "KL(reference ‖ generated)" in kl, "the notebook states the direction of the KL"


def test_a5_solution_ranks_the_generators_as_coursekit_does(tmp_path_factory):
    graded = _graded_once(tmp_path_factory, "a5_evaluating_generators")
    nb = _autograded_nb(graded["root"], "solution", "a5_evaluating_generators")
    printed = "".join(o.get("text", "") for o in _cell(nb, "ranking").outputs if o.output_type == "stream")
    assert "ranking, better first: ['A', 'B']" in printed, printed
    assert "the two distances order them the same way: True" in printed, printed
