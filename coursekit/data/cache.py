"""Generated datasets cached under the data folder, written atomically and checked on reuse.

A dataset is built into a temporary sibling folder and renamed into place only when complete,
so an interrupted run leaves nothing half-written. On completion a ``MANIFEST.json`` records the
build parameters and, for every file, its size in bytes, its modification time (ns) and its
SHA-256. On reuse the manifest is compared with the folder: different parameters, a missing,
extra or changed file (named in the message) make the cache stale, and it is rebuilt with a
warning saying why.

The check on reuse is cheap: only the files whose size or modification time differ from the
manifest are hashed. :func:`verify_cache` (or ``verify=True``) hashes every file, which also
catches an edit that kept the size and the time; ``python -m coursekit doctor`` does that.

The library only ever deletes folders it built: a folder that exists, is not empty and holds no
manifest written here (a student's own folder passed as ``root``) is refused with an error.

Example:
    >>> def build(tmp):                       # writes the dataset's files into tmp
    ...     (tmp / "a.txt").write_text("hello")
    >>> root = cached_build(data_dir() / "demo", {"version": 1}, build)
    >>> verify_cache(root) is None            # None: every file is as it was built
    True

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coursekit.files import atomic_write, umask

MANIFEST = "MANIFEST.json"
WRITER = "coursekit.data.cache"
"""The ``written_by`` value of every manifest this module writes: how it knows a folder is its own."""
FORMAT = 2
"""Manifest layout: 2 records a SHA-256 per file; 1 (no ``format`` key) recorded only counts and bytes."""

_SHOWN = 3  # changed files named in a message; the rest are counted


# ----------------------------------------------------------------------------- the manifest
def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> dict[str, Path]:
    """Every file under ``root`` except the manifest, by its ``/``-separated path relative to ``root``, sorted."""
    found = {}
    for folder, _, names in os.walk(root):  # os.scandir underneath: no stat call per name
        base = Path(folder)
        prefix = base.relative_to(root).as_posix() + "/" if base != root else ""
        for name in names:
            if prefix or name != MANIFEST:
                found[prefix + name] = base / name
    return dict(sorted(found.items()))


def _record(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_of(path)}


def _read_manifest(root: Path) -> tuple[dict | None, str | None]:
    """``(manifest, None)`` for a manifest this module wrote, else ``(None, why it is not ours)``."""
    path = root / MANIFEST
    if not path.is_file():
        return None, f"{path} is missing"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None, f"{path} is unreadable, so it was not written by coursekit"
    if not isinstance(manifest, dict) or "params" not in manifest:
        return None, f"{path} was not written by coursekit"
    if manifest.get("written_by") != WRITER and "inventory" not in manifest:  # "inventory": format 1
        return None, f"{path} was not written by coursekit"
    return manifest, None


def _has_hashes(manifest: dict) -> bool:
    """Whether a manifest of ours records, for every file, its size, time and SHA-256 (format 2)."""
    files = manifest.get("files")
    return (
        manifest.get("format") == FORMAT
        and isinstance(files, dict)
        and all(
            isinstance(entry, dict)
            and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("mtime_ns"), int)
            and isinstance(entry.get("sha256"), str)
            for entry in files.values()
        )
    )


def _write_manifest(root: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(root / MANIFEST, lambda file: file.write(text.encode()), suffix=".json")


def _changed_files(root: Path, manifest: dict, verify: bool) -> tuple[str | None, list[str]]:
    """``(problem or None, names of files hashed again and found unchanged but with a new time)``."""
    recorded, present = manifest["files"], _files(root)
    missing = [name for name in recorded if name not in present]
    extra = [name for name in present if name not in recorded]
    changed, touched = [], []
    for name, path in present.items():
        if name not in recorded:
            continue
        entry, stat = recorded[name], path.stat()
        if stat.st_size != entry["bytes"]:
            changed.append(name)
        elif verify or stat.st_mtime_ns != entry["mtime_ns"]:
            if sha256_of(path) != entry["sha256"]:
                changed.append(name)
            elif stat.st_mtime_ns != entry["mtime_ns"]:
                touched.append(name)
    reasons = (
        _named(missing, "is missing", "are missing")
        + _named(extra, "is not part of it", "are not part of it")
        + _named(changed, "changed since it was built (its SHA-256 differs)", "changed since they were built")
    )
    if reasons:
        return f"its files do not match its {MANIFEST}: {'; '.join(reasons)}", touched
    return None, touched


def _named(names: list[str], one: str, many: str) -> list[str]:
    if not names:
        return []
    if len(names) == 1:
        return [f"{names[0]} {one}"]
    shown = ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
    return [f"{shown} {many}"]


# ----------------------------------------------------------------------------- checks
def cache_problem(root: Path, params: dict[str, Any], verify: bool = False) -> str | None:
    """Why the cache at ``root`` cannot be reused, or None when it is complete, unchanged and matches ``params``.

    Args:
        root: the dataset folder.
        params: the parameters the caller would build with (JSON values).
        verify: hash every file; by default only the files whose size or modification time
            differ from the manifest are hashed (a file touched but unchanged is reused, and its new
            time recorded when the folder is writable).

    Returns:
        None, or a sentence naming what differs, e.g. ``"its files do not match its MANIFEST.json:
        audio/0.wav changed since it was built (its SHA-256 differs)"``.

    Lesson: lessons/00_tour.ipynb
    """
    root = Path(root)
    if not root.exists():
        return "not built yet"
    if root.is_dir() and not any(root.iterdir()):
        return "the folder is empty"
    manifest, foreign = _read_manifest(root)
    if manifest is None:
        return f"{foreign} (an interrupted or foreign build)"
    if manifest.get("params") != json.loads(json.dumps(params)):
        return "it was built with different parameters"
    if manifest.get("format", 1) == 1:
        return f"its {MANIFEST} is from an older coursekit without file hashes (rebuilt once)"
    if not _has_hashes(manifest):
        return f"its {MANIFEST} is damaged: it lacks a size, time or SHA-256 of some file"
    problem, touched = _changed_files(root, manifest, verify)
    if problem is None and touched:
        _record_new_times(root, manifest, touched)
    return problem


def verify_cache(root: str | Path) -> str | None:
    """Hash every file of the dataset at ``root`` and compare it with its manifest, whatever the parameters.

    Costs one read of the whole dataset: about 0.6 s for the default NSynth-mini (1,584 files,
    203 MB) when the files are in the page cache, more when they are read from disk. The check on
    every reuse (:func:`cache_problem`) takes about 0.04 s for the same folder.

    Returns:
        None when every file is as it was built; otherwise a sentence naming the changed, missing or
        extra files, or saying the folder is not a coursekit build (no manifest of ours). The next
        call that uses a changed dataset rebuilds it.

    Example:
        >>> verify_cache(render_nsynth_mini())      # None: intact

    Lesson: lessons/00_tour.ipynb
    """
    root = Path(root)
    if not root.is_dir():
        return f"{root} does not exist" if not root.exists() else f"{root} is a file, not a dataset folder"
    manifest, foreign = _read_manifest(root)
    if manifest is None:
        return f"{foreign} (an interrupted or foreign build)"
    if manifest.get("format", 1) == 1:
        return f"its {MANIFEST} is from an older coursekit without file hashes (rebuilt once on its next use)"
    if not _has_hashes(manifest):
        return f"its {MANIFEST} is damaged: it lacks a size, time or SHA-256 of some file"
    return _changed_files(root, manifest, verify=True)[0]


def is_ours(root: str | Path) -> bool:
    """Whether ``root`` is a folder holding a manifest written by this module (any format)."""
    return manifest_format(root) is not None


def manifest_format(root: str | Path) -> int | None:
    """The format of the manifest this module wrote in ``root`` (1: no hashes, 2: :data:`FORMAT`), else None."""
    root = Path(root)
    if not root.is_dir() or root.is_symlink():
        return None
    manifest = _read_manifest(root)[0]
    return None if manifest is None else manifest.get("format", 1)


def _record_new_times(root: Path, manifest: dict, names: list[str]) -> None:
    """Store the new modification times of files found unchanged, so the next check skips their hash."""
    for name in names:
        manifest["files"][name]["mtime_ns"] = (root / name).stat().st_mtime_ns
    try:
        _write_manifest(root, manifest)
    except OSError:  # a read-only data folder: the files are hashed again next time, nothing worse
        pass


# ----------------------------------------------------------------------------- building
def cached_build(
    root: Path,
    params: dict[str, Any],
    build: Callable[[Path], None],
    verbose: bool = True,
    verify: bool = False,
) -> Path:
    """Return ``root`` holding a complete dataset built by ``build(tmp_folder)`` with ``params``.

    Reuses the folder when its manifest matches ``params`` and its files (see :func:`cache_problem`);
    otherwise builds into a temporary folder next to ``root``, writes the manifest (through
    :func:`coursekit.files.atomic_write`) and moves it into place. A previous build is replaced
    only if its manifest shows this module wrote it; an empty folder is built into.

    Args:
        root: the dataset folder, e.g. ``data_dir() / "nsynth_mini"``.
        params: JSON-serialisable build parameters; a change triggers a rebuild.
        build: writes every file of the dataset into the folder it is given.
        verbose: print a line when building for the first time (a rebuild always warns, saying why).
        verify: hash every file before reusing the folder (see :func:`verify_cache`).

    Returns:
        ``root``.

    Raises:
        FileExistsError: ``root`` is a file, or a folder that is not empty and was not built by
            coursekit (no manifest of ours): nothing is deleted; the message names the folder.
        whatever ``build`` raises; the temporary folder is removed and ``root`` is left as it was.

    Lesson: lessons/00_tour.ipynb
    """
    root = Path(root)
    problem = cache_problem(root, params, verify=verify)
    if problem is None:
        return root
    _check_replaceable(root)
    replacing = _has_content(root)
    if replacing:
        warnings.warn(f"rebuilding {root}: {problem}", stacklevel=2)
    elif verbose:
        print(f"building {root.name} in {root.parent} (once; later runs reuse it)")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes 0700; give the folder the permissions mkdir would
        build(tmp)
        files = _files(tmp)
        manifest = {
            "written_by": WRITER,
            "format": FORMAT,
            "params": params,
            "files": {name: _record(path) for name, path in files.items()},
        }
        _write_manifest(tmp, manifest)
        _swap_in(tmp, root, params, replacing)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return root


def _has_content(root: Path) -> bool:
    return root.is_dir() and any(root.iterdir())


def _check_replaceable(root: Path) -> None:
    """Raise FileExistsError unless ``root`` is absent, an empty folder, or a build of ours."""
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        kind = "a symbolic link" if root.is_symlink() else "a file"
        raise FileExistsError(
            f"{root} is {kind}, not a dataset folder coursekit built, so it will not replace it: "
            "pass a new or empty folder as root, or delete it yourself."
        )
    if not _has_content(root) or is_ours(root):
        return
    raise FileExistsError(
        f"{root} is not empty and {_read_manifest(root)[1]}: coursekit builds datasets only into folders "
        "it made, and never deletes anything else: pass a new or empty folder as root (or leave root "
        "unset to use the data folder), or delete it yourself if it is a stale build."
    )


def _swap_in(tmp: Path, root: Path, params: dict[str, Any], replacing: bool) -> None:
    """Move the finished build ``tmp`` to ``root``, setting aside and deleting only our own previous build.

    ``root`` is checked again here, since it may have appeared while ``build`` ran: another process's
    complete build with the same ``params`` is kept (``tmp`` is dropped), a foreign folder is refused.
    ``replacing`` says whether ``root`` held a (stale) build of ours when the build started.
    """
    if not replacing and _has_content(root) and cache_problem(root, params) is None:
        return  # a concurrent build finished first; ours is removed by the caller
    _check_replaceable(root)
    if root.is_dir() and not _has_content(root):
        root.rmdir()  # removes only an empty folder
    if not root.exists():
        tmp.rename(root)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{root.name}-previous-", dir=root.parent))
    old.rmdir()  # a free name beside root
    root.rename(old)
    if not is_ours(old):  # replaced by a foreign folder between the check and the rename: put it back
        old.rename(root)
        _check_replaceable(root)
        raise FileExistsError(f"{root} changed while it was being rebuilt: run again.")
    try:
        tmp.rename(root)
    except OSError:
        old.rename(root)
        raise
    shutil.rmtree(old)
