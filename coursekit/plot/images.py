"""Image grids and loss curves.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid

from coursekit.history import History
from coursekit.plot.common import ArrayLike, as_tensor, new_axes


def check_images(images: ArrayLike, name: str = "images") -> torch.Tensor:
    """Return ``images`` as a float32 CPU tensor [N, C, H, W], or raise an error that says how to fix it.

    Args:
        images: Tensor or array [N, C, H, W] with C = 1 (grey) or 3 (RGB) and pixels in [0, 1].
        name: how the error messages call the input.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    x = as_tensor(images, name)
    hints = {2: f"a batch of flat images? use {name}.view(-1, 1, 28, 28) for MNIST",
             3: f"add the channel dimension with {name}.unsqueeze(1) (or add a batch dimension for one image)"}
    if x.dim() != 4:
        hint = hints.get(x.dim(), "pass a batch of images")
        raise ValueError(f"{name} has shape {list(x.shape)}; expected [N, C, H, W]: {hint}.")
    if x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(f"{name} has shape {list(x.shape)}: expected N >= 1 images of C = 1 or 3 channels.")
    low, high = float(x.min()), float(x.max())
    if not (np.isfinite(low) and np.isfinite(high)) or low < -1e-4 or high > 1 + 1e-4:
        raise ValueError(
            f"{name} has values in [{low:.3g}, {high:.3g}]; expected pixels in [0, 1]. Decoder logits (what "
            "ImageVAE.decode returns) need torch.sigmoid first, e.g. torch.sigmoid(model.decode(z))."
        )
    return x


def show_grid(ax: Axes, images: torch.Tensor, nrow: int, padding: int, pad_value: float) -> torch.Tensor:
    """Draw ``make_grid``'s [3, H', W'] grid of ``images`` on ``ax``; return the grid."""
    grid = make_grid(images.clamp(0, 1), nrow=nrow, padding=padding, pad_value=pad_value)
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    return grid


def image_grid(
    images: ArrayLike,
    nrow: int = 8,
    title: str | None = None,
    ax: Axes | None = None,
    padding: int = 2,
    pad_value: float = 0.5,
) -> Axes:
    """Show a batch of images as one grid (``torchvision.utils.make_grid``), row by row.

    Args:
        images: Tensor [N, C, H, W], C = 1 or 3, pixels in [0, 1] (``torch.sigmoid`` of logits).
        nrow: images per row.
        title: axes title (default none).
        ax: draw here; default a new figure.
        padding: pixels between images.
        pad_value: grey level of the padding in [0, 1] (0.5 separates white digits on black).

    Returns:
        The Axes; ``ax.images[0].get_array()`` is the grid [H', W', 3].

    Example::

        images = torch.sigmoid(model.decode(torch.randn(32, model.config.latent_dim)))
        plot.image_grid(images, nrow=8, title="samples from the prior")

    Lesson: lessons/02_vae_mnist.ipynb
    """
    x = check_images(images)
    n_cols = min(nrow, x.shape[0])
    n_rows = math.ceil(x.shape[0] / nrow)
    ax = new_axes(ax, figsize=(min(n_cols, 12), min(n_rows, 12) + 0.4))
    show_grid(ax, x, nrow, padding, pad_value)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax


def _history_series(history: History | Mapping) -> dict[str, list]:
    """Per-key lists from a ``train.History``, its ``to_dict()``, or a dict of lists."""
    epochs = getattr(history, "epochs", None)
    if epochs is None and isinstance(history, Mapping) and isinstance(history.get("epochs"), list):
        epochs = history["epochs"]
    if epochs is not None and all(isinstance(epoch, Mapping) for epoch in epochs):
        keys = dict.fromkeys(key for epoch in epochs for key in epoch)
        return {key: [epoch.get(key) for epoch in epochs] for key in keys}
    if isinstance(history, Mapping):
        return {key: list(values) for key, values in history.items()}
    raise TypeError(f"history must be a coursekit.train.History or a dict of lists, got {type(history).__name__}.")


def loss_curves(
    history: History | Mapping[str, Sequence[float]],
    keys: Sequence[str] | None = None,
    logy: bool = False,
    ax: Axes | None = None,
) -> Axes:
    """Plot losses per epoch: train solid, valid dashed, one colour per part (loss, recon, kl, ...).

    Args:
        history: a ``coursekit.train.History``, its ``to_dict()``, or a dict of lists such as
            ``{"train_loss": [...], "valid_loss": [...]}``; an ``"epoch"`` entry, when present, is the x axis.
        keys: which series to draw, one line each; default every key ending in ``"loss"``.
        logy: logarithmic y axis (all values must then be positive).
        ax: draw here; default a new figure.

    Returns:
        The Axes, with one ``Line2D`` per key in ``ax.get_lines()``, labelled by key.

    Example::

        history = fit(model, train_loader, loss_fn, optimizer, valid_loader=valid_loader)
        plot.loss_curves(history, keys=["train_recon", "valid_recon", "train_kl", "valid_kl"], logy=True)

    Lesson: lessons/02_vae_mnist.ipynb
    """
    series = _history_series(history)
    keys = list(keys) if keys is not None else [key for key in series if key.endswith("loss")]
    missing = [key for key in keys if key not in series]
    if missing or not keys:
        wanted = missing or "key ending in 'loss'"
        raise KeyError(f"history has no {wanted}; it records {sorted(series)}: pass keys=[...] from those.")
    ys = {key: np.array([np.nan if v is None else float(v) for v in series[key]]) for key in keys}
    for key, y in ys.items():
        if logy and (y <= 0).any():
            raise ValueError(f"{key} has values <= 0, which a log axis cannot show: use logy=False.")
    ax = new_axes(ax, figsize=(6, 3.5))
    parts = list(dict.fromkeys(_part(key) for key in keys))
    for key, y in ys.items():
        x = list(series.get("epoch") or range(1, len(y) + 1))[: len(y)]
        style = "--" if key.startswith("valid_") else "-"
        ax.plot(x, y, style, color=f"C{parts.index(_part(key)) % 10}", marker="o", markersize=3, label=key)
    ax.set(xlabel="epoch", ylabel="loss", yscale="log" if logy else "linear")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return ax


def _part(key: str) -> str:
    """``"train_kl"`` and ``"valid_kl"`` -> ``"kl"``: the lines of one part share a colour."""
    return key.removeprefix("train_").removeprefix("valid_")
