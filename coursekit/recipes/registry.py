"""The recipe registry, where runs are written, and the one load-or-train pattern of every lesson.

A recipe trains one model from a fixed seed on the CPU and writes its checkpoint (weights, config
and measured metrics) to the path it is given. Where that path is depends on who runs it:

- a student (``python -m coursekit train NAME``, or ``TRAIN_FROM_SCRATCH = True`` in a lesson):
  ``<data folder>/runs/NAME.pt``, git-ignored; the shipped checkpoint is never touched;
- an instructor (``python -m coursekit train NAME --ship``): ``checkpoints/NAME.pt``, and its
  SHA-256 in ``checkpoints/registry.json``.

Lessons load with :func:`load_or_train`: the student's own run when there is one, else the
shipped checkpoint, saying which.

Example::

    model, checkpoint = load_or_train("vae_mnist_conv", build_vae, train=TRAIN_FROM_SCRATCH)

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from coursekit import config
from coursekit.checkpoints import load_checkpoint, load_pretrained, register_checkpoint

TrainFn = Callable[[Path, bool], None]
"""``train(path, ship)``: train, write the checkpoint to ``path``; ``ship`` says whether the inputs
it builds on (e.g. a first-stage model) must be the shipped ones rather than the student's runs."""


@dataclass(frozen=True)
class Recipe:
    """A registered recipe: its name, what it trains (one line) and the function that trains it."""

    name: str
    description: str
    train: TrainFn


RECIPES: dict[str, Recipe] = {}
"""Recipe name -> :class:`Recipe`, filled by the per-lesson modules of :mod:`coursekit.recipes`."""


def register_recipe(name: str, description: str) -> Callable[[TrainFn], TrainFn]:
    """Decorator that makes ``train(path, ship)`` runnable as ``python -m coursekit train <name>``.

    Example::

        @register_recipe("vae_mnist_conv", "convolutional VAE on MNIST, latent size 16 (lesson 02)")
        def vae_mnist_conv(path: Path, ship: bool) -> None:
            ...  # train, then save_checkpoint(path, model, config, metrics)

    Raises:
        ValueError: if ``name`` is taken or ``description`` is empty.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if not description.strip():
        raise ValueError(f"recipe {name!r} needs a one-line description (it is listed by `train --list`).")

    def register(train: TrainFn) -> TrainFn:
        if name in RECIPES:
            raise ValueError(f"a recipe named {name!r} is already registered: pick another name.")
        RECIPES[name] = Recipe(name, description, train)
        return train

    return register


def recipe(name: str) -> Recipe:
    """The registered recipe ``name``; a KeyError lists the known ones."""
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; known recipes: {', '.join(sorted(RECIPES)) or 'none'}.")
    return RECIPES[name]


def runs_dir() -> Path:
    """Where students' runs are written: ``<data folder>/runs`` (git-ignored with the data folder)."""
    return config.data_dir() / "runs"


def run_path(name: str) -> Path:
    """The checkpoint file of a student's run of recipe ``name``: ``runs_dir() / f"{name}.pt"``."""
    return runs_dir() / f"{name}.pt"


def ship_command(name: str) -> str:
    """The instructor's command that rebuilds the shipped checkpoint ``name``."""
    return f"python -m coursekit train {name} --ship"


def run_recipe(name: str, ship: bool = False) -> Path:
    """Run recipe ``name`` and return the checkpoint it wrote.

    Args:
        name: a registered recipe (see ``python -m coursekit train --list``).
        ship: False (students): write :func:`run_path` and leave ``checkpoints/`` alone. True
            (instructors): write ``checkpoints/<name>.pt`` and update its registry entry.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    entry = recipe(name)
    path = config.checkpoint_dir() / f"{name}.pt" if ship else run_path(name)
    torch.set_num_threads(1)  # the same arithmetic on every machine, and no oversubscription
    entry.train(path, ship)
    if ship:
        register_checkpoint(name, path, ship_command(name), entry.description)
    return path


def checkpoint_in_use(name: str, ship: bool = False) -> Path:
    """The file :func:`load_or_train` loads for ``name``: the student's run (unless ``ship``), else the shipped one."""
    own = run_path(name)
    return config.checkpoint_dir() / f"{name}.pt" if ship or not own.is_file() else own


def load_or_train(
    name: str,
    build: Callable[[dict], nn.Module] | None = None,
    train: bool = False,
    map_location: str | torch.device = "cpu",
    verbose: bool = True,
) -> tuple[nn.Module | None, dict]:
    """The model of recipe ``name``: trained now if ``train``, else the student's earlier run, else the shipped one.

    Args:
        name: a registered recipe, also the shipped checkpoint's name.
        build: makes the model from the checkpoint's config (e.g. ``build_vae``); None returns only the checkpoint.
        train: run the recipe first (it writes :func:`run_path`, never ``checkpoints/``).
        map_location: where to load the weights.
        verbose: print which file was loaded.

    Returns:
        ``(model or None, checkpoint)`` as :func:`coursekit.checkpoints.load_checkpoint` returns them.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if train:
        run_recipe(name)
    own = run_path(name)
    if own.is_file():
        if verbose:
            print(f"{name}: your own run, {own} (delete it to use the shipped checkpoint again)")
        return load_checkpoint(own, build, map_location)
    model, checkpoint = load_pretrained(name, build, map_location)
    if verbose:
        print(f"{name}: the shipped checkpoint (`python -m coursekit train {name}` trains your own)")
    return model, checkpoint
