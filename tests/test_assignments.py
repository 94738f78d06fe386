"""The nbgrader pipeline: assignments/ is what `make assignments` generates, and the grader scores as it should.

Everything runs in a temporary copy of the course (nbgrader_config.py, solutions/, assignments/), never in
the repository: nbgrader regenerates the release there, then grades one batch of submissions with
COURSEKIT_FAST=1 and a short cell timeout, through tools/grade.py as `make grade` does: the solution (full
marks), the unmodified student notebook (zero), three broken ones (a syntax error, an infinite loop, an
exception) that must cost exactly the points of the tests they break, and two that nbgrader cannot grade
at all (a cell that kills the kernel with os._exit, a file that is not a notebook), which must get 0
points and a readable reason without stopping the batch. Feedback HTML and the grades CSV come last.
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
from unittest import mock

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin: nbgrader, and alembic, which nbgrader calls from PATH
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and not p.name.startswith("."))
A1 = "a1_vae_mnist"
TIMEOUT_S = 30  # cell timeout in the temporary course; the FAST solution's slowest cell takes a few seconds
COMMAND_TIMEOUT_S = 900  # a hung nbgrader fails the test instead of hanging CI
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")

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


def _break_syntax(source: str) -> str:
    broken = source.replace("def elbo(x, logits, mu, logvar, beta=1.0):", "def elbo(x, logits, mu, logvar, beta=1.0)")
    assert broken != source
    return broken


def _raise_inside(source: str) -> str:
    head, _, _ = source.partition('    """\n    kl = ')
    assert head != source, "kl_to_standard_normal no longer looks as this test expects"
    return head + '    """\n    raise ValueError("a bug in kl_to_standard_normal")\n'


# The submissions graded together, and the test cells each one must fail (every other test cell passes).
BROKEN = {
    "syntax_error": ("elbo", _break_syntax, {"test_elbo", "test_trained_model"}),
    "infinite_loop": (
        "reparameterize", lambda s: "while True:\n    pass\n\n" + s, {"test_reparameterize", "test_trained_model"}
    ),
    "raises": (
        "kl_to_standard_normal", _raise_inside, {"test_kl_to_standard_normal", "test_elbo", "test_trained_model"}
    ),
}


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


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A temporary copy of the course in which `nbgrader generate_assignment --force` regenerated assignments/."""
    root = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    with open(root / "nbgrader_config.py", "a") as config:
        config.write(f"\n# added by tests/test_assignments.py\nc.Execute.timeout = {TIMEOUT_S}\n")
    for folder in ("solutions", "assignments"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for name in ASSIGNMENTS:  # the command `make assignments` runs
        _nbgrader(root, "generate_assignment", name, "--force", "--log-level=WARN")
    return root


@pytest.fixture(scope="module")
def graded(course) -> dict:
    """One batch of A1 submissions autograded, with feedback and grades.csv; returns what the gradebook says."""
    source = nbformat.read(course / "solutions" / A1 / f"{A1}.ipynb", as_version=4)
    release = nbformat.read(course / "assignments" / A1 / f"{A1}.ipynb", as_version=4)
    solution = _completed(release, source)
    submissions = {"solution": solution, "unmodified": release}
    submissions |= {student: _edit(solution, cell, change) for student, (cell, change, _) in BROKEN.items()}
    submissions |= {student: change(solution) for student, (change, _) in FAILING.items()}
    for student, attack in HOSTILE.items():
        nb = nbformat.from_dict(json.loads(json.dumps(solution)))
        nb.cells.insert(0, nbformat.v4.new_code_cell(attack.format(course=course, repo=ROOT, a1=A1)))
        submissions[student] = nb
    for student, nb in submissions.items():
        folder = course / "submitted" / student / A1
        folder.mkdir(parents=True)
        if isinstance(nb, str):
            (folder / f"{A1}.ipynb").write_text(nb)
        else:
            nbformat.write(nb, folder / f"{A1}.ipynb")

    grading = _grade_script(course, A1)  # nbgrader autograde, generate_feedback and export
    if grading.returncode != 0:
        pytest.fail(f"tools/grade.py {A1} exited with {grading.returncode}:\n{grading.stdout[-8000:]}")

    from nbgrader.api import Gradebook

    scores = {}
    with mock.patch.dict(os.environ, {"PATH": _nbgrader_env(course)["PATH"]}):  # Gradebook runs alembic
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            for student in submissions:
                notebook = gb.find_submission_notebook(A1, A1, student)
                scores[student] = {
                    g.name: {"auto": g.auto_score, "max": g.max_score, "manual": g.needs_manual_grade,
                             "type": g.cell_type}
                    for g in notebook.grades
                }
    with open(course / "grades.csv", newline="") as f:
        csv_rows = {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == A1}  # one row each
    return {"root": course, "scores": scores, "csv": csv_rows, "log": grading.stdout}


def _autograded_cells(scores: dict) -> dict[str, float]:
    """grade_id -> points of the autograded (code) test cells."""
    return {name: g["max"] for name, g in scores.items() if g["type"] == "code"}


def _autograded_nb(root: Path, student: str) -> nbformat.NotebookNode:
    return nbformat.read(root / "autograded" / student / A1 / f"{A1}.ipynb", as_version=4)


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


def test_a1_has_visible_and_hidden_tests_and_a_manual_answer():
    nb = nbformat.read(ROOT / "solutions" / A1 / f"{A1}.ipynb", as_version=4)
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    tests = [c for c in graded if c.cell_type == "code"]
    visible = [c.source.split("### BEGIN HIDDEN TESTS")[0] for c in tests]
    assert len(tests) >= 4 and all(re.search(r"^assert ", v, re.M) for v in visible), "visible tests in every test cell"
    assert all("### BEGIN HIDDEN TESTS" in c.source for c in tests), "every test cell has hidden tests"
    assert any(c.cell_type == "markdown" and c.metadata.nbgrader.get("solution") for c in graded), "a manual answer"
    assert all(c.metadata.nbgrader.get("points", 0) > 0 for c in graded)


# ----------------------------------------------------------------------------- grading
def test_solution_scores_full_marks(graded):
    scores = graded["scores"]["solution"]
    lost = {name: g for name, g in scores.items() if g["type"] == "code" and g["auto"] != g["max"]}
    assert not lost, f"the solution loses points in {lost}; see {graded['root'] / 'autograded' / 'solution'}"
    answer = [g for g in scores.values() if g["type"] == "markdown"]
    assert answer and all(g["manual"] for g in answer), "the written answer waits for a human grader"


def test_unmodified_notebook_scores_zero(graded):
    scores = graded["scores"]["unmodified"]
    assert _autograded_cells(scores), "no autograded cells were graded"
    earned = {name: g["auto"] for name, g in scores.items() if g["auto"]}
    assert not earned, f"the unmodified student notebook earns points in {earned}"
    assert not any(g["manual"] for g in scores.values()), "an unanswered question needs no manual grading"
    assert float(graded["csv"]["unmodified"]["score"]) == 0


@pytest.mark.parametrize("student", sorted(BROKEN))
def test_broken_submission_loses_exactly_the_broken_tests(graded, student):
    scores = graded["scores"][student]
    failing = BROKEN[student][2]
    expected = {name: 0.0 if name in failing else points for name, points in _autograded_cells(scores).items()}
    got = {name: scores[name]["auto"] for name in expected}
    assert got == expected, f"{student}: scores per test cell {got}, expected {expected}"


def test_infinite_loop_was_stopped_by_the_cell_timeout(graded):
    nb = _autograded_nb(graded["root"], "infinite_loop")
    errors = {_grade_id(c): [o.ename for o in c.outputs if o.output_type == "error"]
              for c in nb.cells if c.cell_type == "code"}
    assert "CellTimeoutError" in errors["reparameterize"], f"no timeout stopped the loop: {errors['reparameterize']}"
    assert f"Timeout waiting for execute reply ({TIMEOUT_S}s)" in graded["log"], "the test's short timeout was not used"
    assert errors["test_kl_to_standard_normal"] == [], "the cells after the timeout ran on"


def test_grades_csv_has_every_student(graded):
    rows = graded["csv"]
    assert set(rows) == set(graded["scores"])
    for student, scores in graded["scores"].items():
        assert float(rows[student]["score"]) == pytest.approx(sum(g["auto"] or 0 for g in scores.values()))
        assert float(rows[student]["max_score"]) == pytest.approx(sum(g["max"] for g in scores.values()))


def test_feedback_html_is_written_for_every_graded_student(graded):
    for student, scores in graded["scores"].items():
        if student in FAILING:
            continue
        page = graded["root"] / "feedback" / student / A1 / f"{A1}.html"
        assert page.is_file(), f"no feedback for {student}"
        html = page.read_text()
        score = sum(g["auto"] or 0 for g in scores.values())
        total = sum(g["max"] for g in scores.values())
        shown = re.search(rf"Score:\s*{score:g}(\.0+)?\s*/\s*{total:g}", html)
        assert shown, f"{student}: the feedback does not show the score {score} / {total}"


@pytest.mark.parametrize("student", sorted(HOSTILE))
def test_hostile_submission_is_contained_and_still_graded(graded, student):
    attack = _autograded_nb(graded["root"], student).cells[0]
    printed = "".join(o.get("text", "") for o in attack.outputs)
    assert "ESCAPED" not in printed and "blocked" in printed, f"{student}: the attack printed {printed!r}"
    scores = graded["scores"][student]
    lost = {name: g for name, g in scores.items() if g["type"] == "code" and g["auto"] != g["max"]}
    assert not lost, f"{student}: the sandbox broke the solution after the attack: {lost}"


def test_hostile_submissions_left_no_trace(graded):
    for folder in (graded["root"], ROOT, Path("/var/tmp")):
        assert not (folder / "written_by_a_student.txt").exists(), f"a submission wrote into {folder}"
    attack = _autograded_nb(graded["root"], "fills_disk_and_memory").cells[0]
    printed = "".join(o.get("text", "") for o in attack.outputs)
    written = int(re.search(r"after (\d+) MiB", printed).group(1))
    assert 0 < written <= 1024, f"the disk filler wrote {written} MiB: the sandbox's /tmp holds 1024"
    assert not list((graded["root"] / "autograded" / "fills_disk_and_memory").rglob("fill_*.bin"))


def _hidden_test_lines() -> list[str]:
    """Lines of a1's hidden tests that appear nowhere in the released notebook."""
    source = "\n".join(c.source for c in nbformat.read(ROOT / "solutions" / A1 / f"{A1}.ipynb", as_version=4).cells)
    release = "\n".join(c.source for c in nbformat.read(ROOT / "assignments" / A1 / f"{A1}.ipynb", as_version=4).cells)
    blocks = re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", source, re.S)
    return [line.strip() for block in blocks for line in block.split("\n") if len(line.strip()) > 12
            and line.strip() not in release]


def test_feedback_withholds_hidden_tests_but_shows_their_result(graded):
    hidden = _hidden_test_lines()
    assert hidden, "a1 has no hidden test lines to withhold"
    for student in ("solution", "raises"):
        page = (graded["root"] / "feedback" / student / A1 / f"{A1}.html").read_text()
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        shown = [line for line in hidden if line in text]
        assert not shown, f"{student}'s feedback shows hidden tests: {shown[:3]}"
    page = (graded["root"] / "feedback" / "raises" / A1 / f"{A1}.html").read_text()
    assert "details withheld, this test cell has hidden tests" in page  # the failing hidden test, unquoted


def test_feedback_shows_hidden_tests_when_the_instructor_says_so(graded):
    env = dict(_nbgrader_env(graded["root"]), COURSEKIT_FEEDBACK_HIDDEN_TESTS="show")
    subprocess.run([str(BIN / "nbgrader"), "generate_feedback", A1, "--force", "--student=solution",
                    "--CourseDirectory.feedback_directory=feedback_shown"], cwd=graded["root"], env=env,
                   check=True, capture_output=True, timeout=COMMAND_TIMEOUT_S)
    page = (graded["root"] / "feedback_shown" / "solution" / A1 / f"{A1}.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert all(line in text for line in _hidden_test_lines())


def test_make_grade_runs_the_tested_script():
    recipe = re.search(r"^grade:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "no grade target in the Makefile"
    assert "tools/grade.py" in recipe.group(1), f"make grade does not run tools/grade.py:\n{recipe.group(1)}"


@pytest.mark.parametrize("student", sorted(FAILING))
def test_ungradable_submission_gets_zero_and_a_reason(graded, student):
    scores, root, words = graded["scores"][student], graded["root"], FAILING[student][1]
    assert scores and all(g["auto"] == 0 and not g["manual"] for g in scores.values()), (
        f"{student}: every cell should have 0 autograded points and need no manual grade: {scores}"
    )
    row = graded["csv"][student]
    assert float(row["score"]) == 0 and float(row["max_score"]) == sum(g["max"] for g in scores.values()), row
    assert not (root / "autograded" / student / A1).exists(), "nbgrader left a partly graded notebook"
    note = root / "feedback" / student / A1 / "autograde-error.txt"
    assert note.is_file(), f"no {note.name} for {student}: the instructor cannot tell why it scored 0"
    text = note.read_text()
    assert text.startswith(f"Assignment {A1}, student {student}: NOT AUTOGRADED, 0 autograded points."), text[:300]
    assert words in text and f"submitted/{student}/{A1}/{A1}.ipynb" in text, text[:1000]
    summary = graded["log"].rpartition("NOT AUTOGRADED")[2]
    assert re.search(rf"^  {student}/{A1}: .*{words}", summary, re.M), f"make grade does not report {student}"
    assert f"details: feedback/{student}/{A1}/autograde-error.txt" in summary


def test_a_failure_not_known_to_come_from_the_notebook_points_at_the_setup(tmp_path):
    from nbgrader.coursedir import CourseDirectory

    spec = importlib.util.spec_from_file_location("grade_tool", ROOT / "tools" / "grade.py")
    grade_tool = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = grade_tool  # dataclasses look their module up
    spec.loader.exec_module(grade_tool)
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


# ----------------------------------------------------------------------------- a3: a hierarchical VAE (lessons 05, 06)
# The same checks as for A1, on its own temporary course (its own gradebook and grades.csv), so that its grading
# batch neither waits for nor changes A1's.
A3 = "a3_hierarchical_vae"
A3_TESTS = {  # autograded test cells and their points
    "test_multi_resolution_spectral_distance": 3,
    "test_mmd_imq": 3,
    "test_encoder": 3,
    "test_posterior_objective_loss": 3,
    "test_trained_model": 2,
}
A3_ANSWERS = {"objectives_answer": 2, "referee_answer": 1}  # written answers, graded by hand
# What each hidden test compares the student's answer with: coursekit's own implementation.
A3_REFERENCES = {
    "test_multi_resolution_spectral_distance": "reference_audio.multi_resolution_spectral_distance(",
    "test_mmd_imq": "losses.mmd_imq(",
    "test_encoder": "reference.encode(",
    "test_posterior_objective_loss": 'latent_vae_loss(model_h, data, "posterior", beta)',
}


def _a3_insert(cell_text: str, before: str, new_lines: str) -> str:
    assert cell_text.count(before) == 1, f"{before!r} no longer occurs once in the A3 solution"
    return cell_text.replace(before, new_lines + before)


# Broken A3 submissions: the answer cell changed, how, and the test cells that must fail (every other one passes).
A3_BROKEN = {
    "mmd_raises": (
        "mmd_imq", lambda s: _a3_insert(s, "    n, d = z.shape\n", '    raise ValueError("a bug in mmd_imq")\n'),
        {"test_mmd_imq"},
    ),
    "encoder_syntax_error": (
        "encoder", lambda s: s.replace("    def forward(self, x):", "    def forward(self, x)", 1), {"test_encoder"},
    ),
    "loss_raises": (  # the training cell calls the loss too, so the trained-model test fails with it
        "posterior_objective_loss",
        lambda s: _a3_insert(s, '    mu1, logvar1 = batch["mu"], batch["logvar"]\n', "    raise KeyError('mu1')\n"),
        {"test_posterior_objective_loss", "test_trained_model"},
    ),
}


def _a3_source() -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / A3 / f"{A3}.ipynb", as_version=4)


def _a3_cell(nb: nbformat.NotebookNode, grade_id: str):
    cells = [c for c in nb.cells if _grade_id(c) == grade_id]
    assert len(cells) == 1, f"no single cell {grade_id!r} in {A3}"
    return cells[0]


def test_a3_has_visible_and_hidden_tests_and_manual_answers():
    nb = _a3_source()
    assert nb.metadata.kernelspec.name == "coursekit"
    graded = {_grade_id(c): c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    tests = {name: c.metadata.nbgrader["points"] for name, c in graded.items() if c.cell_type == "code"}
    answers = {name: c.metadata.nbgrader["points"] for name, c in graded.items()
               if c.cell_type == "markdown" and c.metadata.nbgrader.get("solution")}
    assert tests == A3_TESTS and answers == A3_ANSWERS
    for name in A3_TESTS:
        cell = graded[name]
        assert cell.metadata.nbgrader["locked"], f"{name} is not locked"
        visible, _, hidden = cell.source.partition("### BEGIN HIDDEN TESTS")
        assert re.search(r"^assert ", visible, re.M), f"{name} has no visible test"
        hidden, end, _ = hidden.partition("### END HIDDEN TESTS")
        assert end and re.search(r"^\s*assert ", hidden, re.M), f"{name} has no hidden test"
        if name in A3_REFERENCES:
            assert A3_REFERENCES[name] in hidden, f"{name}: the hidden test no longer compares with coursekit"
    for name in A3_ANSWERS:  # the source holds a model answer and the grading notes
        assert "*Grading:" in graded[name].source, f"{name} has no grading notes"
    intro = nb.cells[0]
    assert _grade_id(intro) == "intro" and intro.metadata.nbgrader["locked"]
    total = sum(A3_TESTS.values()) + sum(A3_ANSWERS.values())
    assert f"**Grading ({total} points)**" in intro.source, "the intro states another total"
    table = [int(points) for points in re.findall(r"^\| \d \| .* \| (\d+) \|$", intro.source, re.M)]
    assert len(table) == 6 and sum(table) == total, f"the intro's table gives {table}"


def test_a3_sizes_follow_fast_mode_and_training_uses_the_shipped_first_model():
    nb = _a3_source()
    setup = _a3_cell(nb, "setup").source
    for size in ("N_TRAIN_LOOPS", "N_TEST_LOOPS", "EPOCHS"):
        assert re.search(rf"^{size} = config\.pick\(full=\d+, fast=\d+\)", setup, re.M), f"{size} ignores FAST mode"
    train = _a3_cell(nb, "train").source
    assert "first = load_waveform_vae()" in train, "part 5 must encode the loops with lesson 05's shipped model"
    assert "seed=0" in train and "seed=1" in train, "training and held-out loops come from different seeds"
    student_code = "\n".join(c.source.split("### BEGIN HIDDEN TESTS")[0] for c in nb.cells if c.cell_type == "code")
    assert "build_audio_vae" not in student_code, "an untrained stand-in for the first model is left in"
    registry = json.loads((ROOT / "checkpoints" / "registry.json").read_text())
    assert "waveform_vae" in registry and (ROOT / "checkpoints" / "waveform_vae.pt").is_file(), (
        "checkpoints/waveform_vae.pt, which A3 loads, is not shipped"
    )


@pytest.fixture(scope="module")
def graded_a3(tmp_path_factory) -> dict:
    """A3 released in a course of its own, and one batch of submissions autograded as `make grade` does."""
    root = tmp_path_factory.mktemp("course_a3")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    with open(root / "nbgrader_config.py", "a") as config:
        config.write(f"\n# added by tests/test_assignments.py\nc.Execute.timeout = {TIMEOUT_S}\n")
    skip = shutil.ignore_patterns(".ipynb_checkpoints")
    shutil.copytree(ROOT / "solutions" / A3, root / "solutions" / A3, ignore=skip)
    _nbgrader(root, "generate_assignment", A3, "--force", "--log-level=WARN")
    source = nbformat.read(root / "solutions" / A3 / f"{A3}.ipynb", as_version=4)
    release = nbformat.read(root / "assignments" / A3 / f"{A3}.ipynb", as_version=4)
    solution = _completed(release, source)
    submissions = {"solution": solution, "unmodified": release}
    submissions |= {student: _edit(solution, cell, change) for student, (cell, change, _) in A3_BROKEN.items()}
    for student, nb in submissions.items():
        folder = root / "submitted" / student / A3
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{A3}.ipynb")

    grading = _grade_script(root, A3)
    if grading.returncode != 0:
        pytest.fail(f"tools/grade.py {A3} exited with {grading.returncode}:\n{grading.stdout[-8000:]}")

    from nbgrader.api import Gradebook

    scores = {}
    with mock.patch.dict(os.environ, {"PATH": _nbgrader_env(root)["PATH"]}):  # Gradebook runs alembic
        with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
            for student in submissions:
                notebook = gb.find_submission_notebook(A3, A3, student)
                scores[student] = {
                    g.name: {"auto": g.auto_score, "max": g.max_score, "manual": g.needs_manual_grade,
                             "type": g.cell_type}
                    for g in notebook.grades
                }
    with open(root / "grades.csv", newline="") as f:
        csv_rows = {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == A3}
    return {"root": root, "scores": scores, "csv": csv_rows, "log": grading.stdout}


def test_a3_solution_scores_full_marks(graded_a3):
    scores = graded_a3["scores"]["solution"]
    assert _autograded_cells(scores) == A3_TESTS, "the gradebook holds other test cells or points"
    lost = {name: g for name, g in scores.items() if g["type"] == "code" and g["auto"] != g["max"]}
    assert not lost, f"the solution loses points in {lost}; see {graded_a3['root'] / 'autograded' / 'solution'}"
    answers = {name: g for name, g in scores.items() if g["type"] == "markdown"}
    assert set(answers) == set(A3_ANSWERS) and all(g["manual"] for g in answers.values()), (
        "the written answers wait for a human grader"
    )


def test_a3_unmodified_notebook_scores_zero(graded_a3):
    scores = graded_a3["scores"]["unmodified"]
    assert set(_autograded_cells(scores)) == set(A3_TESTS)
    earned = {name: g["auto"] for name, g in scores.items() if g["auto"]}
    assert not earned, f"the unmodified student notebook earns points in {earned}"
    assert not any(g["manual"] for g in scores.values()), "unanswered questions need no manual grading"
    assert float(graded_a3["csv"]["unmodified"]["score"]) == 0


@pytest.mark.parametrize("student", sorted(A3_BROKEN))
def test_a3_broken_submission_loses_exactly_the_broken_tests(graded_a3, student):
    scores = graded_a3["scores"][student]
    failing = A3_BROKEN[student][2]
    expected = {name: 0.0 if name in failing else points for name, points in A3_TESTS.items()}
    got = {name: scores[name]["auto"] for name in expected}
    assert got == expected, f"{student}: scores per test cell {got}, expected {expected}"


def test_a3_grades_csv_and_feedback_have_every_student(graded_a3):
    rows = graded_a3["csv"]
    assert set(rows) == set(graded_a3["scores"])
    for student, scores in graded_a3["scores"].items():
        score = sum(g["auto"] or 0 for g in scores.values())
        total = sum(g["max"] for g in scores.values())
        assert total == sum(A3_TESTS.values()) + sum(A3_ANSWERS.values())
        assert float(rows[student]["score"]) == pytest.approx(score)
        assert float(rows[student]["max_score"]) == pytest.approx(total)
        page = graded_a3["root"] / "feedback" / student / A3 / f"{A3}.html"
        assert page.is_file(), f"no feedback for {student}"
        assert re.search(rf"Score:\s*{score:g}(\.0+)?\s*/\s*{total:g}", page.read_text()), (
            f"{student}: the feedback does not show the score {score} / {total}"
        )


# ----------------------------------------------------------------------------- a5: evaluating generators (lesson 08)
# The same checks again, in a course of its own: the solution gets full marks, the unmodified release zero, and
# broken submissions lose exactly the tests they break, all graded in one batch.
A5 = "a5_evaluating_generators"
A5_TESTS = {  # autograded test cells and their points
    "test_frechet_distance": 3,
    "test_pitch_class_entropy": 2,
    "test_pitch_class_kl": 3,
    "test_ranking": 2,
}
A5_ANSWERS = {"assumptions_answer": 2, "ears_answer": 2, "bias_answer": 2}  # written answers, graded by hand
# What each hidden test compares the student's answer with: scipy, and coursekit's own implementation.
A5_REFERENCES = {
    "test_frechet_distance": ("scipy.linalg.sqrtm(", "evaluation.frechet_distance("),
    "test_pitch_class_entropy": ('evaluation.pitch_statistics(midi)["class_entropy_bits"]',),
    "test_pitch_class_kl": ("scipy.stats.entropy(", "evaluation.histogram_kl("),
    "test_ranking": ("evaluation.frechet_distance(", "evaluation.histogram_kl(", "assert ranking == by_frechet"),
}
A5_CREPE_BUDGET = 100  # CREPE costs about 0.1 s per clip on one core: at most this many clips at full size


def _a5_change(cell_text: str, old: str, new: str) -> str:
    assert cell_text.count(old) == 1, f"{old!r} no longer occurs once in the A5 solution"
    return cell_text.replace(old, new)


# Broken A5 submissions: the answer cell changed, how, and the test cells that must fail (every other one passes).
# The ranking cell calls all three functions, so a broken function costs the ranking's points too.
A5_BROKEN = {
    "frechet_raises": (
        "frechet_distance",
        lambda s: _a5_change(s, "    x, y = np.asarray(",
                             '    raise ValueError("a bug in frechet_distance")\n    x, y = np.asarray('),
        {"test_frechet_distance", "test_ranking"},
    ),
    "entropy_syntax_error": (
        "pitch_class_entropy",
        lambda s: _a5_change(s, "def pitch_class_entropy(midi):", "def pitch_class_entropy(midi)"),
        {"test_pitch_class_entropy", "test_ranking"},
    ),
    "kl_backwards": (  # KL(generated || reference): a plausible slip that the visible test names
        "pitch_class_kl",
        lambda s: _a5_change(s, "p, q = shares(reference_midi), shares(generated_midi)",
                             "p, q = shares(generated_midi), shares(reference_midi)"),
        {"test_pitch_class_kl", "test_ranking"},
    ),
    "ranking_reversed": (  # right numbers, the worse generator first: only the hidden ranking check sees it
        "ranking",
        lambda s: _a5_change(s, 'results[name]["frechet"])', 'results[name]["frechet"], reverse=True)'),
        {"test_ranking"},
    ),
}


def _a5_source() -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "solutions" / A5 / f"{A5}.ipynb", as_version=4)


def _a5_cell(nb: nbformat.NotebookNode, grade_id: str):
    cells = [c for c in nb.cells if _grade_id(c) == grade_id]
    assert len(cells) == 1, f"no single cell {grade_id!r} in {A5}"
    return cells[0]


def test_a5_has_visible_and_hidden_tests_and_manual_answers():
    nb = _a5_source()
    assert nb.metadata.kernelspec.name == "coursekit"
    graded = {_grade_id(c): c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    tests = {name: c.metadata.nbgrader["points"] for name, c in graded.items() if c.cell_type == "code"}
    answers = {name: c.metadata.nbgrader["points"] for name, c in graded.items()
               if c.cell_type == "markdown" and c.metadata.nbgrader.get("solution")}
    assert tests == A5_TESTS and answers == A5_ANSWERS
    for name in A5_TESTS:
        cell = graded[name]
        assert cell.metadata.nbgrader["locked"], f"{name} is not locked"
        visible, _, hidden = cell.source.partition("### BEGIN HIDDEN TESTS")
        assert re.search(r"^assert ", visible, re.M), f"{name} has no visible test"
        hidden, end, _ = hidden.partition("### END HIDDEN TESTS")
        assert end and re.search(r"^\s*assert ", hidden, re.M), f"{name} has no hidden test"
        for reference in A5_REFERENCES[name]:
            assert reference in hidden, f"{name}: the hidden test no longer uses {reference}"
    for name in A5_ANSWERS:  # the source holds a model answer and the grading notes
        assert "*Grading:" in graded[name].source, f"{name} has no grading notes"
    intro = nb.cells[0]
    assert _grade_id(intro) == "intro" and intro.metadata.nbgrader["locked"]
    assert "By the end of this assignment" in intro.source, "the first cell states the objectives"
    total = sum(A5_TESTS.values()) + sum(A5_ANSWERS.values())
    assert f"**Grading ({total} points)**" in intro.source, "the intro states another total"
    table = [int(points) for points in re.findall(r"^\| \d \| .* \| (\d+) \|$", intro.source, re.M)]
    assert len(table) == 5 and sum(table) == total, f"the intro's table gives {table}"
    kl = next(c.source for c in nb.cells if "## Part 3" in c.source)
    assert "KL(reference ‖ generated)" in kl, "the notebook states the direction of the KL"


def test_a5_sizes_follow_fast_mode_and_nothing_is_trained():
    nb = _a5_source()
    setup = _a5_cell(nb, "setup").source
    assert re.search(r'^SIZE = config\.pick\(full="mini", fast="tiny"\)', setup, re.M), "SIZE ignores FAST mode"
    pitch = re.search(r"^N_PITCH = config\.pick\(full=(\d+), fast=(\d+)\)", setup, re.M)
    assert pitch, "N_PITCH ignores FAST mode"
    assert 3 * int(pitch.group(1)) <= A5_CREPE_BUDGET, "CREPE measures three sets: keep them to about 100 clips"
    assert re.search(r"^BIAS_SIZES = config\.pick\(full=\(.*\), fast=\(.*\)\)", setup, re.M)
    generators = _a5_cell(nb, "generators").source
    for needed in ('note_clips("test"', 'note_clips("valid"', 'load_pretrained("family_classifier"'):
        assert needed in generators, f"the generators cell no longer uses {needed}"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"\bfit\(|\.backward\(|optim\.", code), "the assignment trains nothing"
    registry = json.loads((ROOT / "checkpoints" / "registry.json").read_text())
    assert "family_classifier" in registry and (ROOT / "checkpoints" / "family_classifier.pt").is_file(), (
        "checkpoints/family_classifier.pt, which A5 loads, is not shipped"
    )


@pytest.fixture(scope="module")
def graded_a5(tmp_path_factory) -> dict:
    """A5 released in a course of its own, and one batch of submissions autograded as `make grade` does."""
    root = tmp_path_factory.mktemp("course_a5")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    with open(root / "nbgrader_config.py", "a") as config:
        config.write(f"\n# added by tests/test_assignments.py\nc.Execute.timeout = {TIMEOUT_S}\n")
    skip = shutil.ignore_patterns(".ipynb_checkpoints")
    shutil.copytree(ROOT / "solutions" / A5, root / "solutions" / A5, ignore=skip)
    _nbgrader(root, "generate_assignment", A5, "--force", "--log-level=WARN")
    source = nbformat.read(root / "solutions" / A5 / f"{A5}.ipynb", as_version=4)
    release = nbformat.read(root / "assignments" / A5 / f"{A5}.ipynb", as_version=4)
    solution = _completed(release, source)
    submissions = {"solution": solution, "unmodified": release}
    submissions |= {student: _edit(solution, cell, change) for student, (cell, change, _) in A5_BROKEN.items()}
    for student, nb in submissions.items():
        folder = root / "submitted" / student / A5
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{A5}.ipynb")

    grading = _grade_script(root, A5)
    if grading.returncode != 0:
        pytest.fail(f"tools/grade.py {A5} exited with {grading.returncode}:\n{grading.stdout[-8000:]}")

    from nbgrader.api import Gradebook

    scores = {}
    with mock.patch.dict(os.environ, {"PATH": _nbgrader_env(root)["PATH"]}):  # Gradebook runs alembic
        with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
            for student in submissions:
                notebook = gb.find_submission_notebook(A5, A5, student)
                scores[student] = {
                    g.name: {"auto": g.auto_score, "max": g.max_score, "manual": g.needs_manual_grade,
                             "type": g.cell_type}
                    for g in notebook.grades
                }
    with open(root / "grades.csv", newline="") as f:
        csv_rows = {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == A5}
    return {"root": root, "scores": scores, "csv": csv_rows, "log": grading.stdout}


def test_a5_solution_scores_full_marks(graded_a5):
    scores = graded_a5["scores"]["solution"]
    assert _autograded_cells(scores) == A5_TESTS, "the gradebook holds other test cells or points"
    lost = {name: g for name, g in scores.items() if g["type"] == "code" and g["auto"] != g["max"]}
    assert not lost, f"the solution loses points in {lost}; see {graded_a5['root'] / 'autograded' / 'solution'}"
    answers = {name: g for name, g in scores.items() if g["type"] == "markdown"}
    assert set(answers) == set(A5_ANSWERS) and all(g["manual"] for g in answers.values()), (
        "the written answers wait for a human grader"
    )


def test_a5_solution_ranks_the_generators_as_coursekit_does(graded_a5):
    nb = nbformat.read(graded_a5["root"] / "autograded" / "solution" / A5 / f"{A5}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in _a5_cell(nb, "ranking").outputs if o.output_type == "stream")
    assert "ranking, better first: ['A', 'B']" in printed, printed
    assert "the two distances order them the same way: True" in printed, printed


def test_a5_unmodified_notebook_scores_zero(graded_a5):
    scores = graded_a5["scores"]["unmodified"]
    assert set(_autograded_cells(scores)) == set(A5_TESTS)
    earned = {name: g["auto"] for name, g in scores.items() if g["auto"]}
    assert not earned, f"the unmodified student notebook earns points in {earned}"
    assert not any(g["manual"] for g in scores.values()), "unanswered questions need no manual grading"
    assert float(graded_a5["csv"]["unmodified"]["score"]) == 0


@pytest.mark.parametrize("student", sorted(A5_BROKEN))
def test_a5_broken_submission_loses_exactly_the_broken_tests(graded_a5, student):
    scores = graded_a5["scores"][student]
    failing = A5_BROKEN[student][2]
    expected = {name: 0.0 if name in failing else points for name, points in A5_TESTS.items()}
    got = {name: scores[name]["auto"] for name in expected}
    assert got == expected, f"{student}: scores per test cell {got}, expected {expected}"


def test_a5_grades_csv_and_feedback_have_every_student(graded_a5):
    rows = graded_a5["csv"]
    assert set(rows) == set(graded_a5["scores"])
    for student, scores in graded_a5["scores"].items():
        score = sum(g["auto"] or 0 for g in scores.values())
        total = sum(g["max"] for g in scores.values())
        assert total == sum(A5_TESTS.values()) + sum(A5_ANSWERS.values())
        assert float(rows[student]["score"]) == pytest.approx(score)
        assert float(rows[student]["max_score"]) == pytest.approx(total)
        page = graded_a5["root"] / "feedback" / student / A5 / f"{A5}.html"
        assert page.is_file(), f"no feedback for {student}"
        assert re.search(rf"Score:\s*{score:g}(\.0+)?\s*/\s*{total:g}", page.read_text()), (
            f"{student}: the feedback does not show the score {score} / {total}"
        )
