"""Where things live and how the course runs: device, seeding, FAST mode, folders.

Every lesson starts with the same setup cell::

    from coursekit import config
    config.seed_everything(0)
    device = config.get_device()
    n_steps = config.pick(full=2000, fast=20)

Environment variables (all optional):

- ``COURSEKIT_DEVICE``: force a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
- ``COURSEKIT_FAST=1``: shrink data and training so CI can execute every notebook.
  ``make test`` sets it. It changes sizes, never which code runs.
- ``COURSEKIT_DATA``: the data folder (default ``data/`` at the repository root).
- ``COURSEKIT_CHECKPOINTS``: the checkpoint folder (default ``checkpoints/`` at the root).

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import os
import random
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def is_fast() -> bool:
    """Whether FAST mode is on, read from ``COURSEKIT_FAST`` each time it is called.

    Returns:
        True for ``1``/``true``/``yes``/``on`` (any case), False when unset or ``0``/``false``/``no``/``off``.

    Raises:
        ValueError: for any other value, naming the variable and the accepted values.

    Lesson: lessons/00_tour.ipynb
    """
    value = os.environ.get("COURSEKIT_FAST", "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"COURSEKIT_FAST={os.environ['COURSEKIT_FAST']!r} is not understood: "
        "set it to 1 for FAST mode or 0 (or unset it) for student mode."
    )


try:
    FAST: bool = is_fast()
    """FAST mode as it was when ``coursekit.config`` was imported (see :func:`is_fast`).

    With a ``COURSEKIT_FAST`` that :func:`is_fast` does not understand, importing still works (so
    ``python -m coursekit doctor`` can report it) and reading ``config.FAST`` raises its ValueError.
    """
    _FAST_ERROR: str | None = None
except ValueError as _error:
    _FAST_ERROR = (
        f"{_error} (config.FAST was read when coursekit.config was imported: "
        "restart Python, or the notebook's kernel, after fixing it.)"
    )


def __getattr__(name: str) -> Any:
    """``config.FAST`` when ``COURSEKIT_FAST`` was not understood at import: raise its ValueError."""
    if name == "FAST" and _FAST_ERROR is not None:
        raise ValueError(_FAST_ERROR)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pick(full: T, fast: T) -> T:
    """Choose a size by mode: ``fast`` in FAST mode, ``full`` otherwise.

    Example: ``n_epochs = config.pick(full=30, fast=1)``.

    Lesson: lessons/00_tour.ipynb
    """
    return fast if is_fast() else full


def get_device() -> torch.device:
    """The device lessons train on: ``COURSEKIT_DEVICE`` if set, else cuda, then mps, then cpu.

    Raises:
        ValueError: if ``COURSEKIT_DEVICE`` names an unknown device or one this machine lacks.

    Lesson: lessons/00_tour.ipynb
    """
    requested = os.environ.get("COURSEKIT_DEVICE", "").strip()
    if requested:
        return _requested_device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _requested_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"COURSEKIT_DEVICE={name!r} is not a device name: use cpu, cuda, cuda:N or mps.") from err
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"COURSEKIT_DEVICE={name!r}: coursekit supports cpu, cuda and mps.")
    problem = missing_device(device)
    if problem:
        raise ValueError(
            f"COURSEKIT_DEVICE={name!r} but {problem}: unset COURSEKIT_DEVICE to pick automatically, or set it to cpu."
        )
    return device


def missing_device(device: torch.device) -> str:
    """Why this machine cannot hold tensors on ``device``, or "" when it can.

    Example: ``missing_device(torch.device("cuda"))`` on a laptop without a GPU is
    ``"this machine has no CUDA device (torch.cuda.is_available() is False)"``.

    Lesson: lessons/00_tour.ipynb
    """
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "this machine has no CUDA device (torch.cuda.is_available() is False)"
        if device.index is not None and device.index >= count:
            return f"this machine has {count} CUDA device{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1})"
        return ""
    if device.type == "mps":
        available = torch.backends.mps.is_available()
    else:  # xpu and other accelerators have a torch.<type>.is_available(); cpu and meta do not
        backend = getattr(torch, device.type, None)
        available = not callable(getattr(backend, "is_available", None)) or backend.is_available()
    return "" if available else f"this machine has no {device.type.upper()} device"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's global generators (CPU and CUDA).

    Args:
        seed: a non-negative integer.

    Returns:
        A fresh ``torch.Generator`` seeded with ``seed``, for functions that take ``generator=``.

    Lesson: lessons/00_tour.ipynb
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def repo_root() -> Path:
    """The repository root: the folder holding ``pyproject.toml`` above this package.

    Falls back to the current working directory when coursekit is installed elsewhere.
    """
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def data_dir() -> Path:
    """The data folder: ``COURSEKIT_DATA`` if set, else ``<repo>/data`` (git-ignored).

    Generated datasets are cached here. The folder is not created by this call.
    """
    return Path(os.environ.get("COURSEKIT_DATA") or repo_root() / "data").expanduser()


def checkpoint_dir() -> Path:
    """The checkpoint folder: ``COURSEKIT_CHECKPOINTS`` if set, else ``<repo>/checkpoints``."""
    return Path(os.environ.get("COURSEKIT_CHECKPOINTS") or repo_root() / "checkpoints").expanduser()


def config_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """The dataclass ``cls`` built from a dict that its ``to_dict`` wrote (a checkpoint's config).

    Missing keys take their defaults; the dataclass's own ``__post_init__`` checks the values.

    Raises:
        TypeError: if ``cls`` is not a dataclass or ``values`` is not a dict.
        ValueError: for a key that is not a field, naming the fields.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if not is_dataclass(cls):
        raise TypeError(f"config_from_dict needs a dataclass type, got {cls!r}.")
    if not isinstance(values, dict):
        raise TypeError(f"{cls.__name__} values must be a dict (as to_dict writes), got {type(values).__name__}.")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}: its fields are {known}.")
    return cls(**values)


def device_of(owner: object) -> torch.device:
    """The device of a module's parameters, or of the module a bound method belongs to (``model.decode``).

    Anything else (a plain function, a module without parameters) is on the CPU.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    owner = getattr(owner, "__self__", owner)
    parameter = next(owner.parameters(), None) if isinstance(owner, torch.nn.Module) else None
    return parameter.device if parameter is not None else torch.device("cpu")


def as_config(cls: type[T], config: T | dict[str, Any] | None) -> T:
    """The model config a builder was given: ``cls()`` for None, :func:`config_from_dict` of a dict
    (as a checkpoint stores it), the config itself when it already is a ``cls``.

    Raises:
        TypeError: for anything else, naming the type received.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if config is None:
        return cls()
    if isinstance(config, dict):
        return config_from_dict(cls, config)
    if not isinstance(config, cls):
        raise TypeError(f"config must be a {cls.__name__} or a dict of its fields, got {type(config).__name__}.")
    return config
