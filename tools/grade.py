"""Autograde the submissions, write feedback and grades.csv: one broken submission costs only its own points.

`make grade` runs this script from the course folder (the repository root, where nbgrader_config.py is):

    .venv/bin/python tools/grade.py [--force] ASSIGNMENT...

For each assignment with submissions in submitted/<student>/<assignment>/ it runs `nbgrader autograde`
(all students in one batch, its log shown as it runs), then `nbgrader generate_feedback`; at the end
`nbgrader export` writes grades.csv. nbgrader grades the rest of the batch when one submission fails, but
then exits non-zero, deletes that submission's autograded folder and leaves no feedback: a notebook that
kills its kernel (os._exit, a segfault, an out-of-memory kill) used to stop the whole class's grading.
Here such a submission is recorded instead: its autograded points are set to 0 in the gradebook (what
nbgrader does for a missing notebook), its reason is written to feedback/<student>/<assignment>/
autograde-error.txt and printed at the end, and everyone else is graded, fed back and exported as usual.
A failed submission has no autograded folder, so the next run tries it again (a resubmission, or the same
crash, recorded again).

Exit status 0 when every submission was graded or failed because of its own notebook (the kernel died,
the file is not a notebook); 1 when a submission failed for another reason (it is still recorded, and the
rest is still graded, but the cause may be the setup: read its autograde-error.txt), when nbgrader failed
without naming a submission (then nothing is recorded or exported) or when there is nothing to grade;
2 for a bad command line.
Every submission runs in the sandboxed kernel of tools/sandbox_kernel.py (installed here before grading;
COURSEKIT_GRADE_ISOLATION=off runs them unisolated): it cannot read the solutions, the gradebook or other
students' work, nor write outside a private copy of its own folder.
The script needs only nbgrader, not coursekit.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's bin: nbgrader, and alembic, which nbgrader runs from PATH
ERROR_FILE = "autograde-error.txt"  # written in feedback/<student>/<assignment>/ for a failed submission
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PRINTING = threading.Lock()  # one log printed at a time when submissions are graded side by side

# The exception at the end of nbgrader's traceback -> what happened and what to do, in words. These failures
# come from the submitted notebook itself; any other one may come from the setup (see UNKNOWN_FAILURE).
KNOWN_FAILURES = {
    "DeadKernelError": (
        "the Python kernel died while the grader ran the notebook: the code ended the Python process "
        "(os._exit, or a crash such as a segmentation fault in a library) or used more memory than the "
        "machine allows and was killed. Nothing after that point ran, so no test could be scored.",
        "open {notebooks} (make lab) and run its cells in order: the cell that ends the kernel is the one "
        "to fix.",
    ),
    "NotJSONError": (
        "the file is not a readable notebook (not valid JSON): it may be truncated or damaged.",
        "ask the student for the notebook again (a text editor shows what is wrong with {notebooks}).",
    ),
}
UNKNOWN_FAILURE = (
    "nbgrader could not autograde it: {exception}. This failure is not one known to come from the "
    "notebook itself, so check the setup too (the course kernel, the gradebook).",
    "read nbgrader's error below; if the setup is at fault, fix it and run make grade again.",
)


@dataclass
class Failure:
    student: str
    assignment: str
    reason: str  # what happened, in words, for the instructor and the student
    hint: str  # what to do; {notebooks} stands for the submitted notebooks
    own_fault: bool  # True when the submission's own notebook caused it (a known failure)
    log: str  # nbgrader's error lines for this submission


def run(args: list[str], *, capture: bool = False, stream: bool = True, threads: int | None = None) -> tuple[int, str]:
    """Run ``nbgrader <args>``; return its exit status and (if capture) its log.

    With ``stream`` its log is shown as it runs; without, it is shown whole when the command ends (so
    that the logs of commands run side by side do not interleave). ``threads`` caps the threads of
    the numerical libraries in the notebooks it runs (OMP_NUM_THREADS, MKL_NUM_THREADS), unless the
    caller's environment sets them already.
    """
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(threads))
    if stream:
        print(f"+ nbgrader {' '.join(args)}", flush=True)
    proc = subprocess.Popen(
        [str(BIN / "nbgrader"), *args], env=env, text=True, errors="replace",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    lines = []
    for line in proc.stdout:
        if stream:
            sys.stdout.write(line)
        lines.append(ANSI.sub("", line.rstrip("\n")))
    status = proc.wait()
    if not stream:
        with PRINTING:
            print(f"+ nbgrader {' '.join(args)}", *lines, sep="\n", flush=True)
    sys.stdout.flush()
    return status, "\n".join(lines) if capture or not stream else ""


def autograde(coursedir, assignment: str, students: list[str], force: bool, jobs: int) -> tuple[int, str]:
    """``nbgrader autograde`` of ``students``' submissions of ``assignment``: exit status and log.

    With ``jobs`` 1, one nbgrader command grades the whole batch in turn. With more, each submission gets
    its own command, ``jobs`` of them at a time; the gradebook (SQLite) serialises their writes, each
    waiting for the others' (nbgrader_config.py gives the gradebook's URL a 60 s timeout). Each of those
    notebooks gets the cores divided by ``jobs`` as its threads (at least one): torch would otherwise
    start a thread per core in every kernel, and two kernels on two cores, each with two threads, run
    slower together than one after the other (bench/RESULTS.md). The exit status is the worst of them
    and the log is theirs joined, so a failed submission is found in it as in one batch's log.
    """
    flags = ["--force"] if force else []
    if jobs == 1:
        return run(["autograde", assignment, *flags], capture=True)
    if not force:  # nbgrader would skip these anyway; not starting a command for them saves its start-up
        students = [s for s in students
                    if not os.path.isdir(coursedir.format_path(coursedir.autograded_directory, s, assignment))]
    threads = max(1, len(os.sched_getaffinity(0)) // jobs)
    print(f"+ nbgrader autograde {assignment} for {len(students)} submissions, {jobs} at a time, "
          f"{threads} thread(s) each", flush=True)
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(
            lambda student: run(["autograde", assignment, "--student", glob.escape(student), *flags],
                                stream=False, threads=threads),
            students))
    return max((status for status, _ in results), default=0), "\n".join(log for _, log in results)


def course_directory():
    """nbgrader's CourseDirectory, configured exactly as the nbgrader commands configure it."""
    from nbgrader.apps.baseapp import NbGrader

    app = NbGrader()
    app.initialize([])
    return app.coursedir


def submissions(coursedir, assignment: str) -> list[str]:
    """The students with a notebook in submitted/<student>/<assignment>/ (the ones nbgrader autogrades)."""
    excluded = set(filter(None, coursedir.student_id_exclude.split(",")))
    students = []
    top = Path(coursedir.root) / coursedir.submitted_directory
    for student in sorted(p.name for p in top.iterdir()) if top.is_dir() else []:
        path = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        if student.startswith(".") or student in excluded or not path.is_dir():
            continue
        if any(path.glob("*.ipynb")):
            students.append(student)
        else:
            print(f"WARNING: {path} holds no notebook: not graded and not in grades.csv; "
                  f"put the student's notebook there as {assignment}.ipynb", flush=True)
    return students


def failure_from_log(log: str, coursedir, student: str, assignment: str) -> Failure:
    """What nbgrader's log says about the failed submission of ``student``."""
    path = os.path.normpath(coursedir.format_path(coursedir.submitted_directory, student, assignment))
    lines = log.split("\n")
    start = next((i for i, line in enumerate(lines) if line.endswith(f"error processing assignment: {path}")), None)
    block = []
    if start is not None:  # the record after it is the traceback; its lines are indented
        for line in lines[start + 1:]:
            if line.startswith("[") and block:
                break
            block.append(line)
    exception = next((line.strip() for line in reversed(block) if line.strip()), "")
    for name, (reason, hint) in KNOWN_FAILURES.items():
        if name in exception:
            return Failure(student, assignment, reason, hint, True, "\n".join(block))
    reason, hint = UNKNOWN_FAILURE
    reason = reason.format(exception=exception or "no error message found in its log")
    return Failure(student, assignment, reason, hint, False, "\n".join(block))


def zero_autograded_points(coursedir, failure: Failure) -> None:
    """Give every cell of the failed submission 0 autograded points, as nbgrader does for a missing notebook.

    The first autograde of a crashing notebook leaves the scores empty (they sum to 0), but a forced regrade
    would keep the scores of the version graded before; manual scores are left alone.
    """
    from nbgrader.api import Gradebook

    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for notebook in gb.find_submission(failure.assignment, failure.student).notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()


def error_file(coursedir, student: str, assignment: str) -> Path:
    return Path(coursedir.format_path(coursedir.feedback_directory, student, assignment)) / ERROR_FILE


def write_error_file(coursedir, failure: Failure) -> Path:
    """feedback/<student>/<assignment>/autograde-error.txt: the reason, what to do, nbgrader's error lines.

    The feedback of an earlier version of the submission is removed: it would show that version's points.
    """
    folder = Path(coursedir.format_path(coursedir.submitted_directory, failure.student, failure.assignment))
    notebooks = ", ".join(str(p.relative_to(coursedir.root)) for p in sorted(folder.glob("*.ipynb")))
    path = error_file(coursedir, failure.student, failure.assignment)
    shutil.rmtree(path.parent, ignore_errors=True)
    path.parent.mkdir(parents=True)
    path.write_text(
        f"Assignment {failure.assignment}, student {failure.student}: NOT AUTOGRADED, 0 autograded points.\n\n"
        f"Why: {failure.reason}\n\n"
        f"What to do: {failure.hint.format(notebooks=notebooks)} A new submission is graded as usual: "
        "`make grade` tries every submission that has no autograded folder again on each run.\n\n"
        f"For the instructor, nbgrader's error for this submission:\n{failure.log}\n"
    )
    return path


def prepare_sandbox() -> bool:
    """Install the grading sandbox's kernel; False (with the reason printed) if this machine cannot run it."""
    if os.environ.get("COURSEKIT_GRADE_ISOLATION", "on").strip().lower() == "off":
        print("WARNING: COURSEKIT_GRADE_ISOLATION=off: submissions run with your rights, unisolated", flush=True)
        return True
    sandbox = Path(__file__).resolve().parent / "sandbox_kernel.py"
    check = subprocess.run([sys.executable, str(sandbox), "--check"], capture_output=True, text=True)
    if check.returncode:
        print(f"ERROR: the grading sandbox cannot run here: {check.stdout.strip()}")
        return False
    subprocess.run([sys.executable, str(sandbox), "--install"], check=True, capture_output=True)
    return True


def grade(assignments: list[str], force: bool, jobs: int = 1) -> int:
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # nbgrader's Gradebook runs alembic
    if not prepare_sandbox():
        return 1
    coursedir = course_directory()
    graded = {a: students for a in assignments if (students := submissions(coursedir, a))}
    if not graded:
        print(f"nothing to grade: put submissions in {coursedir.submitted_directory}/<student>/<assignment>/ "
              f"(assignments: {', '.join(assignments)})")
        return 1
    failures = []
    for assignment, students in graded.items():
        status, log = autograde(coursedir, assignment, students, force, jobs)
        failed = [s for s in students
                  if not os.path.isdir(coursedir.format_path(coursedir.autograded_directory, s, assignment))]
        named = set(re.findall(rf"error processing assignment '{re.escape(assignment)}' for student '(.+)'", log))
        unexplained = sorted(set(failed) - named)  # not autograded, and nbgrader reported no error for them
        if unexplained or (status != 0 and not failed):
            what = f"left {', '.join(unexplained)} unscored without an error" if unexplained else "named no submission"
            print(f"\nERROR: nbgrader autograde {assignment} exited with {status} and {what}: the cause is the "
                  "setup, not one student. Read the log above, fix it and run make grade again; nothing was "
                  "recorded or exported.")
            return 1
        for student in failed:
            failures.append(failure_from_log(log, coursedir, student, assignment))
            zero_autograded_points(coursedir, failures[-1])
        autograded = os.path.join(coursedir.format_path(coursedir.autograded_directory, "*", assignment), "*.ipynb")
        if not glob.glob(autograded):  # nbgrader fails when there is nothing to give feedback on
            continue
        status, _ = run(["generate_feedback", assignment, "--force"])
        if status != 0:
            print(f"\nERROR: nbgrader generate_feedback {assignment} exited with {status}: see the log above.")
            return 1
    status, _ = run(["export", "--to", "grades.csv"])
    if status != 0:
        print(f"\nERROR: nbgrader export exited with {status}: see the log above; grades.csv is not up to date.")
        return 1

    failed = {(f.student, f.assignment) for f in failures}
    for assignment, students in graded.items():
        for student in students:
            if (student, assignment) not in failed:  # graded now: an error file of an earlier run is stale
                error_file(coursedir, student, assignment).unlink(missing_ok=True)
    print(f"\ngrades: {Path(coursedir.root) / 'grades.csv'}, "
          f"feedback: {Path(coursedir.root) / coursedir.feedback_directory}/<student>/<assignment>/")
    if failures:
        print(f"\nNOT AUTOGRADED: {len(failures)} submission(s) have 0 autograded points in grades.csv; "
              "the other submissions were graded as usual:")
    for failure in failures:
        path = write_error_file(coursedir, failure)
        print(f"  {failure.student}/{failure.assignment}: {failure.reason}\n"
              f"    details: {path.relative_to(coursedir.root)}")
    setup = [f"{f.student}/{f.assignment}" for f in failures if not f.own_fault]
    if setup:
        print(f"\nERROR: {', '.join(setup)} failed for a reason not known to come from the notebook itself: "
              "check the setup, fix it and run make grade again (exit status 1 until then).")
    return 1 if setup else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="+", metavar="ASSIGNMENT", help="assignment names (folders of solutions/)")
    parser.add_argument("--force", action="store_true", help="autograde again the submissions autograded before")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="grade N submissions at a time, each in its own nbgrader command (default 1: one batch)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: give a number of submissions to grade at a time, 1 or more")
    return grade(args.assignments, args.force, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
