"""nbgrader configuration of the course: `solutions/` is the source, `assignments/` the release.

nbgrader reads this file from the current directory, so run its commands from the repository root
(`make assignments`, `make grade`). The instructor guide is solutions/README.md.
"""

import os

c = get_config()  # noqa: F821 (nbgrader provides get_config when it loads this file)

ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "coursekit-generative-audio"
c.CourseDirectory.root = ROOT
c.CourseDirectory.source_directory = "solutions"  # instructor notebooks: solutions/<assignment>/<assignment>.ipynb
c.CourseDirectory.release_directory = "assignments"  # generated student notebooks, committed
c.CourseDirectory.submitted_directory = "submitted"  # submitted/<student>/<assignment>/, git-ignored
c.CourseDirectory.autograded_directory = "autograded"  # git-ignored
c.CourseDirectory.feedback_directory = "feedback"  # HTML feedback per student, git-ignored
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(ROOT, "gradebook.db")  # git-ignored

# Grading runs each notebook in the course kernel (the kernelspec stored in the source notebook,
# installed into .venv by the Makefile). A cell that runs longer than this many seconds is
# interrupted and the grader moves on to the next cell (Execute.interrupt_on_timeout is True),
# so an infinite loop costs its own test points and nothing else.
c.Execute.timeout = 120
c.Execute.kernel_name = "coursekit"
