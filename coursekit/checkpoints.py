"""Save and load model weights together with the config that built them.

A checkpoint is one ``.pt`` file holding a dict::

    {"format": 1, "state_dict": {...}, "config": {...}, "metrics": {...},
     "created": "2025-01-31T12:00:00+00:00", "torch": "2.9.1"}

It is loaded with ``torch.load(weights_only=True)``, so opening a checkpoint never runs code from
the file. Checkpoints shipped with the course live in ``checkpoints/`` (see
:func:`coursekit.config.checkpoint_dir`) and are listed in ``checkpoints/registry.json`` with their
SHA-256 and the recipe (``python -m coursekit train <recipe> --ship``) that rebuilds them.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coursekit import config as course_config
from coursekit.files import atomic_write

FORMAT = 1
"""Version of the checkpoint layout written by :func:`save_checkpoint`."""

KEYS = ("format", "state_dict", "config", "metrics", "created", "torch")
"""The keys every coursekit checkpoint holds."""

LIST_RECIPES = "python -m coursekit train --list"


def save_checkpoint(path: str | Path, model: nn.Module, config: Any, metrics: dict | None = None) -> Path:
    """Write ``model``'s weights, the ``config`` that built it and its ``metrics`` to one ``.pt`` file.

    The file is written to a temporary name in the same folder and renamed when complete, so an
    interrupted save never leaves half a checkpoint. Weights are stored on the CPU.

    Args:
        path: where to write, e.g. ``checkpoints/vae_mnist_conv.pt``; parent folders are created.
        model: the trained model.
        config: a dict (or a config dataclass instance) of JSON values: what ``build`` in
            :func:`load_checkpoint` needs to rebuild the model.
        metrics: JSON values describing the weights, e.g. ``{"epoch": 12, "valid_loss": 101.3}``.

    Returns:
        The path written.

    Raises:
        TypeError: if ``config`` or ``metrics`` holds a value JSON cannot store, naming its key.

    Example::

        save_checkpoint("checkpoints/mine.pt", model, {"latent_dim": 2}, {"valid_loss": 101.3})

    Lesson: lessons/02_vae_mnist.ipynb
    """
    config = _as_dict(config, "config")
    metrics = _as_dict({} if metrics is None else metrics, "metrics")
    checkpoint = {
        "format": FORMAT,
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "config": config,
        "metrics": metrics,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: torch.save(checkpoint, file))
    return path


def _as_dict(value: Any, name: str) -> dict:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict (or a config dataclass instance), got {type(value).__name__}.")
    _check_json(value, name)
    return value


def _check_json(value: Any, where: str) -> None:
    """Raise TypeError naming the first entry of ``value`` that JSON cannot store."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r}: checkpoint keys must be strings.")
            _check_json(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
    elif not isinstance(value, str | int | float | bool | type(None)):
        raise TypeError(
            f"{where} is a {type(value).__name__}, which JSON cannot store: "
            "use plain numbers, strings, booleans, lists or dicts (e.g. float(x) for a tensor)."
        )


def load_checkpoint(
    path: str | Path,
    build: Callable[[dict], nn.Module] | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module | None, dict]:
    """Read a checkpoint written by :func:`save_checkpoint` and, given ``build``, the model it holds.

    Args:
        path: the ``.pt`` file.
        build: a function from the stored config dict to a fresh model, e.g.
            ``lambda cfg: ConvVAE(VAEConfig(**cfg))``. Without it only the dict is returned.
        map_location: device the tensors (and the model) are loaded onto; default ``"cpu"``.
            ``coursekit.config.get_device()`` gives the best device this machine has.

    Returns:
        ``(model, checkpoint)``: the model with the stored weights, on ``map_location`` and in eval
        mode (call ``.train()`` to fine-tune), or None without ``build``; and the checkpoint dict
        with the keys in :data:`KEYS`.

    A file that ``checkpoints/registry.json`` lists (a shipped checkpoint: ``path`` resolves to an
    entry's file in :func:`coursekit.config.checkpoint_dir`) is first checked against its SHA-256,
    as :func:`load_pretrained` does; any other file (your own runs) is loaded without that check.

    Raises:
        FileNotFoundError: the file does not exist (says how to make it).
        ValueError: ``map_location`` names a device this machine lacks (says which to use instead;
            never reported as a damaged file); a shipped checkpoint whose SHA-256 differs from the
            registry's (says how to restore it); the file is corrupt or truncated, is not a
            coursekit checkpoint, or its weights do not fit the model ``build`` makes (naming the
            keys and shapes that differ).

    Example::

        model, ckpt = load_checkpoint("checkpoints/mine.pt", build=lambda cfg: nn.Linear(**cfg))

    Lesson: lessons/02_vae_mnist.ipynb
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: {_how_to_make(path)}.")
    _check_device(path, map_location)
    registered = _registered_as(path)
    if registered is not None:
        _check_sha256(path, *registered)
    return _load(path, build, map_location)


def _load(path: Path, build: Callable[[dict], nn.Module] | None, map_location) -> tuple[nn.Module | None, dict]:
    """:func:`load_checkpoint` after its checks of the file, the device and the registry."""
    checkpoint = _read(path, map_location)
    if build is None:
        return None, checkpoint
    model = build(checkpoint["config"])
    _check_fits(path, model, checkpoint["state_dict"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(map_location).eval(), checkpoint


def _how_to_make(path: Path) -> str:
    for entry in list_pretrained().values():
        if (course_config.checkpoint_dir() / entry["file"]).resolve() == path.resolve():
            restore = f"git checkout {_shown(path)}"
            return f"rebuild it with `{entry['recipe']}` (or restore the shipped file with `{restore}`)"
    return f"write it with save_checkpoint, or train one with a recipe (list them with `{LIST_RECIPES}`)"


def _shown(path: Path) -> Path:
    """``path`` relative to the repository root when it is inside it, for commands in messages."""
    try:
        return path.resolve().relative_to(course_config.repo_root().resolve())
    except ValueError:
        return path


def _read(path: Path, map_location: str | torch.device) -> dict:
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):
            raise ValueError(f"{path} is corrupt: delete it, then {_how_to_make(path)}.") from err
        raise ValueError(
            f"{path} is not a coursekit checkpoint: it stores Python objects, not just tensors and plain data "
            "(was it saved with torch.save(model)?). Save models with coursekit.checkpoints.save_checkpoint."
        ) from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as err:
        if isinstance(err, RuntimeError) and "Attempting to deserialize object on" in str(err):
            # torch could not put a stored tensor on its device: a device problem, not a damaged file
            raise ValueError(_device_message(path, map_location, str(err).split(". ")[0])) from err
        raise ValueError(f"{path} is corrupt or truncated: delete it, then {_how_to_make(path)}.") from err
    missing = [key for key in KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise ValueError(
            f"{path} is not a coursekit checkpoint: it lacks {missing}. "
            "Save models with coursekit.checkpoints.save_checkpoint."
        )
    if checkpoint["format"] != FORMAT:
        raise ValueError(f"{path} has checkpoint format {checkpoint['format']!r}; this coursekit reads {FORMAT}.")
    return checkpoint


def _check_device(path: Path, map_location: Any) -> None:
    """Raise ValueError, before reading the file, when ``map_location`` is a device this machine lacks.

    ``torch.load`` reports that as a RuntimeError, which must not read as a damaged file. The other
    forms torch accepts (None, a dict or a function) are left to torch.
    """
    if map_location is None or isinstance(map_location, dict) or callable(map_location):
        return
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(
            f"map_location={map_location!r} is not a device name: use 'cpu', 'cuda', 'cuda:N' or 'mps', "
            "or map_location=coursekit.config.get_device() for the best device this machine has."
        ) from err
    problem = course_config.missing_device(device)
    if problem:
        raise ValueError(_device_message(path, map_location, problem))


def _device_message(path: Path, map_location: Any, problem: str) -> str:
    return (
        f"cannot load {path} onto map_location={map_location!r}: {problem}. The file itself was not read "
        "and is not the problem. Load it with map_location='cpu', or with "
        "map_location=coursekit.config.get_device() for the best device this machine has."
    )


def _registered_as(path: Path) -> tuple[str, dict] | None:
    """``(name, entry)`` of the registry entry whose file ``path`` is, or None for any other file.

    Only files directly in the checkpoint folder can be registered, so the registry is not read for
    files elsewhere (a student's own runs).
    """
    folder = course_config.checkpoint_dir().resolve()
    resolved = path.resolve()
    if resolved.parent != folder:
        return None
    for name, entry in list_pretrained().items():
        if (folder / entry["file"]).resolve() == resolved:
            return name, entry
    return None


def _check_sha256(path: Path, name: str, entry: dict) -> None:
    """Raise ValueError when the shipped checkpoint ``name`` at ``path`` is not the file the registry lists."""
    found = sha256_of(path)
    if found != entry["sha256"]:
        raise ValueError(
            f"{path} does not match the SHA-256 of the shipped checkpoint {name!r} in {registry_path().name} "
            f"(expected {entry['sha256'][:12]}..., found {found[:12]}...): the file was modified or corrupted; "
            f"delete it, then {_how_to_make(path)}. Save weights you trained yourself under another name."
        )


def _check_fits(path: Path, model: nn.Module, state_dict: dict) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [
        f"{key}: checkpoint {list(state_dict[key].shape)} vs model {list(expected[key].shape)}"
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if shapes:
        problems.append(f"shape mismatch {'; '.join(shapes)}")
    if problems:
        raise ValueError(
            f"the weights in {path} do not fit the model built from its config: {', '.join(problems)}. "
            "Does build() make the same model class with the stored config?"
        )


# ----------------------------------------------------------------------------- shipped checkpoints
def registry_path() -> Path:
    """``registry.json`` in the checkpoint folder (:func:`coursekit.config.checkpoint_dir`).

    Lesson: lessons/02_vae_mnist.ipynb
    """
    return course_config.checkpoint_dir() / "registry.json"


def list_pretrained() -> dict[str, dict]:
    """The shipped checkpoints: name -> ``{"file", "sha256", "recipe", "size_bytes", "description"}``.

    Returns an empty dict when the registry file does not exist.

    Example::

        for name, entry in list_pretrained().items():
            print(name, entry["description"])

    Lesson: lessons/02_vae_mnist.ipynb
    """
    path = registry_path()
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}): restore it with `git checkout {_shown(path)}`.") from err


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def register_checkpoint(name: str, path: str | Path, recipe: str, description: str) -> dict:
    """Add (or replace) ``name`` in the registry with ``path``'s size and SHA-256. Recipes call this.

    Args:
        name: what lessons pass to :func:`load_pretrained`, e.g. ``"vae_mnist_conv"``.
        path: the checkpoint, which must sit directly in the checkpoint folder.
        recipe: the command that rebuilds it, e.g. ``"python -m coursekit train vae_mnist_conv --ship"``.
        description: one line saying what the weights are.

    Returns:
        The registry entry written.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    path = Path(path)
    folder = course_config.checkpoint_dir()
    if path.resolve().parent != folder.resolve():
        raise ValueError(f"{path} is not in the checkpoint folder {folder}: save the checkpoint there first.")
    entry = {
        "file": path.name,
        "sha256": sha256_of(path),
        "recipe": recipe,
        "size_bytes": path.stat().st_size,
        "description": description,
    }
    registry = list_pretrained() | {name: entry}
    text = json.dumps(registry, indent=2, sort_keys=True) + "\n"
    atomic_write(registry_path(), lambda file: file.write(text.encode()))
    return entry


def load_pretrained(
    name: str,
    build: Callable[[dict], nn.Module] | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module | None, dict]:
    """Load a shipped checkpoint by name, after checking its SHA-256 against the registry.

    Args:
        name: a key of :func:`list_pretrained`, e.g. ``"vae_mnist_conv"``.
        build, map_location: as in :func:`load_checkpoint`.

    Returns:
        ``(model, checkpoint)`` as :func:`load_checkpoint` returns them.

    Raises:
        ValueError: unknown ``name`` (listing the known ones), or a file whose bytes differ from
            the registry's (modified or corrupted; says how to rebuild it).
        FileNotFoundError: the registered file is missing (says how to rebuild it).

    Example::

        model, ckpt = load_pretrained("vae_mnist_conv", build=lambda cfg: ConvVAE(VAEConfig(**cfg)))

    Lesson: lessons/02_vae_mnist.ipynb
    """
    registry = list_pretrained()
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none yet"
        raise ValueError(f"no pretrained checkpoint named {name!r}; known names: {known}.")
    entry = registry[name]
    path = course_config.checkpoint_dir() / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint {name!r} is missing ({path}): {_how_to_make(path)}.")
    _check_device(path, map_location)
    _check_sha256(path, name, entry)
    return _load(path, build, map_location)
