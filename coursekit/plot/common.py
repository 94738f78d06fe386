"""Helpers every plot module shares: new axes, tensors from arrays.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

ArrayLike = torch.Tensor | np.ndarray


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax`` itself, or the axes of a new pyplot figure of ``figsize`` inches."""
    return ax if ax is not None else plt.subplots(figsize=figsize, layout="constrained")[1]


def as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """A detached float32 CPU tensor, or a TypeError naming ``name``."""
    if not isinstance(x, torch.Tensor | np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}.")
    return torch.as_tensor(x).detach().cpu().float()
