"""Generated datasets cached under the data folder, written atomically and checked on reuse.

A dataset is built into a temporary sibling folder and renamed into place only when complete,
so an interrupted run leaves nothing half-written. On completion a ``MANIFEST.json`` records the
build parameters and the number and total size of the files. On reuse the manifest is compared
with the folder: a missing manifest, different parameters or missing/truncated files mean the
cache is stale or corrupt, and it is rebuilt with a message saying why.

Example:
    >>> def build(tmp):                       # writes the dataset's files into tmp
    ...     (tmp / "a.txt").write_text("hello")
    >>> root = cached_build(data_dir() / "demo", {"version": 1}, build)

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANIFEST = "MANIFEST.json"


def _inventory(root: Path) -> dict[str, int]:
    """``{"files": n, "bytes": total}`` of every file under ``root`` except the manifest."""
    files = [p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def cache_problem(root: Path, params: dict[str, Any]) -> str | None:
    """Why the cache at ``root`` cannot be used, or None when it is complete and matches ``params``."""
    manifest = root / MANIFEST
    if not root.exists():
        return "not built yet"
    if not manifest.exists():
        return f"{manifest} is missing (an interrupted or foreign build)"
    try:
        recorded = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"{manifest} is unreadable"
    if recorded.get("params") != json.loads(json.dumps(params)):
        return "it was built with different parameters"
    if recorded.get("inventory") != _inventory(root):
        return f"its files do not match {manifest} (some are missing, extra or truncated)"
    return None


def cached_build(root: Path, params: dict[str, Any], build: Callable[[Path], None], verbose: bool = True) -> Path:
    """Return ``root`` holding a complete dataset built by ``build(tmp_folder)`` with ``params``.

    Reuses the folder when its manifest matches ``params`` and its files; otherwise builds into a
    temporary folder next to ``root``, writes the manifest, and swaps it in with a rename.

    Args:
        root: the dataset folder, e.g. ``data_dir() / "nsynth_mini"``.
        params: JSON-serialisable build parameters; a change triggers a rebuild.
        build: writes every file of the dataset into the folder it is given.
        verbose: print a line when (re)building.
    """
    root = Path(root)
    problem = cache_problem(root, params)
    if problem is None:
        return root
    if root.exists():
        warnings.warn(f"rebuilding {root}: {problem}", stacklevel=2)
    elif verbose:
        print(f"building {root.name} in {root.parent} (once; later runs reuse it)")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        build(tmp)
        manifest = {"params": params, "inventory": _inventory(tmp)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return root
