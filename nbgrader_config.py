"""nbgrader configuration of the course: `solutions/` is the source, `assignments/` the release.

nbgrader reads this file from the current directory, so run its commands from the repository root
(`make assignments`, `make grade`). The instructor guide is solutions/README.md.
"""

import os
import sys

c = get_config()  # noqa: F821 (nbgrader provides get_config when it loads this file)

ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "coursekit-generative-audio"
c.CourseDirectory.root = ROOT
c.CourseDirectory.source_directory = "solutions"  # instructor notebooks: solutions/<assignment>/<assignment>.ipynb
c.CourseDirectory.release_directory = "assignments"  # generated student notebooks, committed
c.CourseDirectory.submitted_directory = "submitted"  # submitted/<student>/<assignment>/, git-ignored
c.CourseDirectory.autograded_directory = "autograded"  # git-ignored
c.CourseDirectory.feedback_directory = "feedback"  # HTML feedback per student, git-ignored
# git-ignored. timeout: a command waits up to 60 s for another's write (`make grade JOBS=2` runs two at once)
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(ROOT, "gradebook.db") + "?timeout=60"

# Grading runs each notebook in the course kernel (the kernelspec stored in the source notebook,
# installed into .venv by the Makefile). A cell that runs longer than this many seconds is
# interrupted and the grader moves on to the next cell (Execute.interrupt_on_timeout is True),
# so an infinite loop costs its own test points and nothing else.
c.Execute.timeout = 120

# Grading runs each submission in the sandboxed kernel (tools/sandbox_kernel.py, installed by tools/grade.py):
# it cannot read solutions/, submitted/, autograded/, feedback/, .git/ or gradebook.db, cannot write outside
# a private copy of its own folder, and has capped memory and file sizes. COURSEKIT_GRADE_ISOLATION=off runs
# submissions in the plain course kernel instead, with the grader's rights (only where user namespaces are
# unavailable, and only for code you trust).
ISOLATION = os.environ.get("COURSEKIT_GRADE_ISOLATION", "on").strip().lower()
if ISOLATION not in ("on", "off"):
    raise ValueError(f"COURSEKIT_GRADE_ISOLATION={ISOLATION!r}: use 'on' (the default) or 'off'")
# Only `nbgrader autograde` uses the sandbox; `nbgrader validate` (students' Validate button) and the other
# commands use the course kernel, which runs on every system the course supports.
AUTOGRADING = os.path.basename(sys.argv[0]) == "nbgrader" and sys.argv[1:2] == ["autograde"]
c.Execute.kernel_name = "coursekit-sandbox" if ISOLATION == "on" and AUTOGRADING else "coursekit"

# Feedback: nbgrader's HTML feedback shows every test cell as graded, hidden tests included, and a failing
# hidden test's traceback quotes its code. COURSEKIT_FEEDBACK_HIDDEN_TESTS=hide (the default) removes the
# hidden regions from the feedback and replaces the traceback of a test cell that has them by the error's
# name; the cell's pass/fail and points stay. =show gives nbgrader's own feedback.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import ClearHiddenTests, GetGrades  # noqa: E402

HIDDEN_TESTS = os.environ.get("COURSEKIT_FEEDBACK_HIDDEN_TESTS", "hide").strip().lower()
if HIDDEN_TESTS not in ("hide", "show"):
    raise ValueError(f"COURSEKIT_FEEDBACK_HIDDEN_TESTS={HIDDEN_TESTS!r}: use 'hide' (the default) or 'show'")


class WithholdHiddenTests(ClearHiddenTests):
    """ClearHiddenTests for feedback: also withholds the traceback of a test cell that had hidden tests."""

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if cell.cell_type == "code" and self.begin_test_delimeter in resources.get("_hidden_sources", {}).get(
                cell_index, ""):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output['ename']}: details withheld, this test cell has hidden tests"]
                    output["evalue"] = "details withheld"
        return cell, resources

    def preprocess(self, nb, resources):
        resources["_hidden_sources"] = {i: cell.source for i, cell in enumerate(nb.cells)}
        return super().preprocess(nb, resources)


if HIDDEN_TESTS == "hide":
    c.GenerateFeedback.preprocessors = [GetGrades, WithholdHiddenTests, CSSHTMLHeaderPreprocessor]
