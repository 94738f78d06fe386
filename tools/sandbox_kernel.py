"""The grading kernel: runs a student's notebook where it cannot touch the instructor's files.

`make grade` (tools/grade.py) installs this launcher as the Jupyter kernel ``coursekit-sandbox`` and nbgrader
runs every submission in it (nbgrader_config.py). Jupyter starts it in the submission's folder with the
kernel's connection file; it then starts the ordinary Python kernel inside Linux namespaces, with no tool
beyond util-linux's ``unshare`` and ``prlimit`` and no root rights (user namespaces suffice):

1. a new user and mount namespace (the grader's user maps to root *inside* it only);
2. the instructor's folders of the course (and of the repository this file is in, when it grades a copy)
   are covered by empty read-only folders: ``solutions/``, ``submitted/``, ``autograded/``, ``feedback/``,
   ``.git/`` and ``gradebook.db`` (and its journal) cannot be read;
3. a RAM disk of ``SCRATCH_MB`` covers ``autograded/`` and receives a copy of the submission's folder at
   its own path, where the notebook runs, with a home and a temporary folder (HOME, TMPDIR) and a data
   folder (COURSEKIT_DATA) that links to the built caches of ``data/`` and receives any cache the
   library builds; all of it is thrown away with the kernel;
4. every other mount is made read-only, then a second user and mount namespace locks all of it: code in
   the notebook, even as that namespace's root, cannot unmount or remount anything;
5. ``prlimit`` caps the kernel's address space (``MEMORY_GB``) and the size of any file it writes; a new
   PID namespace ends every process the notebook started when the kernel ends.

Not covered: the network (the kernel talks to Jupyter over TCP on localhost), reading files outside the
course that the grader's user can read, and CPU time (nbgrader's cell timeout bounds each cell).

    python tools/sandbox_kernel.py --install   # register the kernel in this Python's environment
    python tools/sandbox_kernel.py --check     # exit 0 if this machine can run it, else say why
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KERNEL_NAME = "coursekit-sandbox"
HIDDEN = ("solutions", "submitted", "autograded", "feedback", ".git", "gradebook.db", "gradebook.db-journal")
SCRATCH_MB = 1024  # RAM disk over autograded/: the submission's copy, its home and temp folders, data writes
MEMORY_GB = 10  # address space of the kernel and what it starts (PyTorch alone reserves about 4.6 GB)
FILE_MB = 512  # the largest file the notebook may write
NAMESPACES = ["unshare", "--user", "--map-root-user", "--mount"]


def course_root(start: Path) -> Path:
    """The course folder: the nearest parent of ``start`` that holds nbgrader_config.py."""
    for folder in [start, *start.parents]:
        if (folder / "nbgrader_config.py").is_file():
            return folder
    raise SystemExit(f"{start} is not inside a course folder (no nbgrader_config.py above it): the sandbox "
                     "kernel grades submissions in autograded/<student>/<assignment>/ of a course")


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def read_only_remount_all(keep: set[str]) -> None:
    """Remount every mount read-only except ``keep`` and the kernel's pseudo file systems."""
    with open("/proc/self/mountinfo") as info:
        mounts = [line.split() for line in info]
    for fields in mounts:
        point, options = fields[4].replace("\\040", " "), fields[5].split(",")
        if point in keep or point.startswith(("/proc", "/sys", "/dev")):
            continue
        locked = [o for o in options if o in ("nosuid", "nodev", "noexec")]  # a remount must keep them
        subprocess.run(["mount", "-o", ",".join(["remount", "bind", "ro", *locked]), point],
                       check=False, stderr=subprocess.DEVNULL)  # a mount we may not change stays as it is


def inside(connection: str, workdir: str, root: str, data: str) -> None:
    """Runs as root of the new namespaces: build the file system view, then start the locked kernel."""
    mount("--make-rprivate", "/")
    submission = os.open(workdir, os.O_RDONLY)  # still readable once its folder is covered
    work = Path(workdir)
    # the scratch RAM disk covers the instructor folder that holds the submission (autograded/), so the
    # notebook runs at its own path and sees no other student's folder; elsewhere it covers the folder itself
    scratch = next((Path(root, name) for name in ("autograded", "submitted") if work.is_relative_to(Path(root, name))),
                   work)
    repository = Path(__file__).resolve().parent.parent  # the course's own repository, if it grades a copy
    for path in [Path(folder, name) for folder in dict.fromkeys([root, str(repository)]) for name in HIDDEN]:
        if path == scratch:
            continue
        if path.is_dir():
            mount("-t", "tmpfs", "-o", "ro,size=4k,mode=555", "tmpfs", str(path))
    mount("-t", "tmpfs", "-o", f"size={SCRATCH_MB}m,mode=1777", "tmpfs", str(scratch))
    empty = scratch / ".sandbox-empty"  # hidden files read as empty and cannot be written (read-only below)
    empty.touch()
    for path in [Path(folder, name) for folder in dict.fromkeys([root, str(repository)]) for name in HIDDEN]:
        if path.is_file():
            mount("--bind", str(empty), str(path))
    shutil.copytree(f"/proc/self/fd/{submission}", work, dirs_exist_ok=True)
    os.close(submission)
    home, tmp, data_view = (scratch / f".sandbox-{name}" for name in ("home", "tmp", "data"))
    for folder in (home, tmp, data_view):
        folder.mkdir()
    # the library's data folder, seen through links: built caches are read where they are (read-only), a
    # missing one is built here and thrown away (an overlay cannot rename directories without privileges)
    for entry in Path(data).iterdir() if Path(data).is_dir() else ():
        (data_view / entry.name).symlink_to(entry)
    mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", "/dev/shm")
    read_only_remount_all(keep={str(scratch), "/dev/shm"})
    kernel_json = scratch / ".sandbox-kernel.json"
    kernel_json.write_text(connection)
    os.chdir(work)
    env = dict(os.environ, HOME=str(home), TMPDIR=str(tmp), MPLCONFIGDIR=str(home / ".matplotlib"),
               COURSEKIT_DATA=str(data_view))
    for name in ("SANDBOX_CONNECTION", "SANDBOX_WORKDIR", "SANDBOX_ROOT", "SANDBOX_DATA"):
        env.pop(name, None)
    limits = [f"--as={MEMORY_GB << 30}", f"--fsize={FILE_MB << 20}"]
    os.execvpe("unshare", [*NAMESPACES, "prlimit", *limits, "--", sys.executable, "-m", "ipykernel_launcher",
                           "-f", str(kernel_json)], env)


def launch(connection_file: str) -> None:
    """Started by Jupyter in the submission's folder: re-run this file inside fresh namespaces."""
    workdir = Path.cwd()
    root = course_root(workdir)
    data = os.environ.get("COURSEKIT_DATA") or str(Path(__file__).resolve().parent.parent / "data")
    Path(data).mkdir(parents=True, exist_ok=True)  # coursekit's cache folder, as the library would create it
    env = dict(os.environ, SANDBOX_CONNECTION=Path(connection_file).read_text(), SANDBOX_WORKDIR=str(workdir),
               SANDBOX_ROOT=str(root), SANDBOX_DATA=str(Path(data).resolve()))
    os.execvpe("unshare", [*NAMESPACES, "--pid", "--fork", "--kill-child", sys.executable, __file__, "--inside"], env)


def check() -> str | None:
    """None if this machine can run the sandbox, else why not and what to do."""
    missing = [tool for tool in ("unshare", "prlimit", "mount") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found: install util-linux"
    probe = subprocess.run([*NAMESPACES, "true"], capture_output=True, text=True)
    if probe.returncode:
        return (f"user namespaces are not available here ({probe.stderr.strip()}): allow them (the sysctls "
                "kernel.unprivileged_userns_clone=1 on Debian, kernel.apparmor_restrict_unprivileged_userns=0 on "
                "Ubuntu; in Docker a seccomp profile that permits unshare), or grade code you trust without "
                "isolation: COURSEKIT_GRADE_ISOLATION=off")
    return None


def install() -> Path:
    """Register ``coursekit-sandbox`` in this interpreter's environment (sys.prefix); returns its folder."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = {
        "argv": [sys.executable, str(Path(__file__).resolve()), "-f", "{connection_file}"],
        "display_name": "Python 3 (coursekit, sandboxed for grading)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "kernel.json").write_text(json.dumps(spec, indent=1))
        return Path(KernelSpecManager().install_kernel_spec(folder, KERNEL_NAME, prefix=sys.prefix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-f", dest="connection_file", help="the kernel's connection file (Jupyter passes it)")
    parser.add_argument("--install", action="store_true", help="register the kernel in this environment")
    parser.add_argument("--check", action="store_true", help="say whether this machine can run it")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.install:
        print(f"installed the {KERNEL_NAME} kernel in {install()}")
    elif args.check:
        problem = check()
        print(problem or "the grading sandbox works on this machine")
        sys.exit(1 if problem else 0)
    elif args.inside:
        env = os.environ
        inside(env["SANDBOX_CONNECTION"], env["SANDBOX_WORKDIR"], env["SANDBOX_ROOT"], env["SANDBOX_DATA"])
    elif args.connection_file:
        launch(args.connection_file)
    else:
        parser.error("give -f CONNECTION_FILE (Jupyter does), --install or --check")


if __name__ == "__main__":
    main()
