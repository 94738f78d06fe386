"""Writing files so that an interrupted run never leaves half of one behind.

Every file the library writes (audio, checkpoints, the checkpoint registry, cached features,
dataset manifests) goes through :func:`atomic_write`: the bytes go to a temporary file beside the
destination, are flushed to disk, and only then renamed over the destination. A crash, a killed
kernel or a full disk leaves either the old file or the new one, never a truncated mix.

Example:
    >>> atomic_write(Path("notes.txt"), lambda file: file.write(b"hello"))

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def umask() -> int:
    """This process's file-creation mask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any], suffix: str = ".tmp") -> Path:
    """Call ``write(file)`` on a temporary binary file beside ``path``, then rename it to ``path``.

    Args:
        path: the destination; its folder is created if missing.
        write: writes the whole content into the open binary file it is given.
        suffix: the temporary file's suffix (libraries that pick a format by suffix need the real one).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        whatever ``write`` raises; the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~umask())  # mkstemp makes 0600; give the permissions open() would
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
