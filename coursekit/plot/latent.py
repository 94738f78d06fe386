"""Latent spaces: PCA to 2-D, scatter plots by label, the decoded manifold of a 2-D latent.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from coursekit import config
from coursekit.plot.common import ArrayLike, as_tensor, new_axes
from coursekit.plot.images import check_images, show_grid


def pca_2d(z: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Project latents on their first two principal components (SVD of the centred data).

    Each component's sign is fixed so that its largest loading is positive, so the picture does
    not flip between runs.

    Args:
        z: Tensor [N, D], N >= 2, D >= 2.

    Returns:
        ``(points [N, 2], explained [2])``: the projections, and the share of the total variance
        each component explains (in [0, 1]).

    Lesson: lessons/02_vae_mnist.ipynb
    """
    z = as_tensor(z, "z").double()
    centred = z - z.mean(dim=0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:2]
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    components = components * signs
    total = (s**2).sum()
    explained = (s[:2] ** 2) / total if total > 0 else torch.zeros(2, dtype=z.dtype)
    return (centred @ components.T).float(), explained.float()


def _label_colors(labels: ArrayLike | Sequence, n: int) -> tuple[np.ndarray, dict[str, tuple] | None]:
    """Colours for ``labels`` [n]: (RGBA [n, 4], {class name: RGBA}) for <= 20 classes, else (values [n], None)."""
    values = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if values.shape != (n,):
        raise ValueError(f"labels has shape {list(values.shape)}; expected one label per latent, [{n}].")
    is_number = np.issubdtype(values.dtype, np.number) or values.dtype == bool
    classes = np.unique(values)
    if len(classes) <= 20 and (not is_number or np.all(np.mod(values, 1) == 0)):
        # tab20 holds ten dark/light pairs; taking every dark shade before any light one keeps the first ten
        # classes as far apart as tab10's, so a class is paired with its look-alike only from the eleventh on
        tab20 = plt.get_cmap("tab20").colors
        palette = plt.get_cmap("tab10").colors if len(classes) <= 10 else [*tab20[0::2], *tab20[1::2]]
        rgba = np.array([(*palette[i], 1.0) for i in range(len(classes))])
        return rgba[np.searchsorted(classes, values)], {str(c): tuple(rgba[i]) for i, c in enumerate(classes)}
    if not is_number:
        raise ValueError(f"labels has {len(classes)} distinct names; at most 20 can be told apart by colour.")
    return values.astype(float), None


def latent_scatter(
    z: ArrayLike,
    labels: ArrayLike | Sequence | None = None,
    ax: Axes | None = None,
    label_name: str = "label",
    s: float = 6.0,
) -> Axes:
    """Scatter latents in 2-D: the two dims themselves when D = 2, else their first two principal components.

    Args:
        z: Tensor [N, D], D >= 2 (e.g. the encoder means ``mu`` of a validation set).
        labels: one per latent, [N], or None. Up to 20 classes (digits, styles, instrument
            families; whole numbers or strings) get one colour each and a legend; numbers with
            more distinct values (pitch, loudness) a continuous colour map and a colorbar.
        ax: draw here; default a new figure.
        label_name: title of the legend or colorbar.
        s: marker area in points^2.

    Returns:
        The Axes; ``ax.collections[0].get_offsets()`` holds the N points in the order of ``z``. Axis
        labels say ``z[0]``/``z[1]``, or ``PC 1``/``PC 2`` with the share of variance (:func:`pca_2d`).

    Example::

        mu, _ = model.encode(images)                 # [N, latent_dim]
        plot.latent_scatter(mu, labels=digits, label_name="digit")

    Lesson: lessons/02_vae_mnist.ipynb
    """
    z = as_tensor(z, "z")
    if z.dim() != 2 or z.shape[1] < 2 or z.shape[0] < 2:
        raise ValueError(f"z has shape {list(z.shape)}; expected [N, D] with N >= 2 latents of D >= 2 dims.")
    if z.shape[1] == 2:
        points, axis_labels = z, ("z[0]", "z[1]")
    else:
        points, explained = pca_2d(z)
        axis_labels = [f"PC {i + 1} of z ({100 * float(e):.0f}% of variance)" for i, e in enumerate(explained)]
    colors, classes = _label_colors(labels, len(z)) if labels is not None else (None, None)
    ax = new_axes(ax, figsize=(5.5, 4.5))
    dots = ax.scatter(points[:, 0].numpy(), points[:, 1].numpy(), c=colors, s=s)
    if classes is not None:
        handles = [Line2D([], [], ls="", marker="o", color=color) for color in classes.values()]
        ax.legend(handles, list(classes), title=label_name, fontsize="small")
    elif labels is not None:
        ax.figure.colorbar(dots, ax=ax, label=label_name)
    ax.set(xlabel=axis_labels[0], ylabel=axis_labels[1])
    return ax


def manifold_values(extent: float = 3.0, n: int = 15, spacing: str = "linear") -> torch.Tensor:
    """The ``n`` coordinates per latent dimension that :func:`latent_manifold` decodes, from -extent to extent.

    ``"linear"``: evenly spaced. ``"quantile"``: the standard normal's quantiles at probabilities
    evenly spaced from Phi(-extent) to Phi(extent) (Kingma & Welling 2014, Fig. 4), so each row of
    the grid covers the same prior probability and points crowd near 0 where the prior is dense.

    Returns:
        Tensor [n], increasing.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if not extent > 0 or isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"extent={extent!r}, n={n!r}: use extent > 0 and a whole number n >= 2.")
    if spacing == "linear":
        return torch.linspace(-extent, extent, n)
    if spacing == "quantile":
        normal = torch.distributions.Normal(0.0, 1.0)
        edge = float(normal.cdf(torch.tensor(-float(extent), dtype=torch.float64)))
        return normal.icdf(torch.linspace(edge, 1 - edge, n, dtype=torch.float64)).float()
    raise ValueError(f"spacing={spacing!r}: use 'linear' or 'quantile'.")


def _tick_label(value: torch.Tensor | float) -> str:
    """A latent value as a short tick label; rounding noise such as -3e-08 from linspace reads "0"."""
    return f"{round(float(value), 6) + 0.0:.2g}"


def latent_manifold(
    decode: Callable[[torch.Tensor], torch.Tensor],
    extent: float = 3.0,
    n: int = 15,
    spacing: str = "linear",
    ax: Axes | None = None,
    device: torch.device | str | None = None,
) -> Axes:
    """Decode an n x n grid of 2-D latents and show the images where their latents lie.

    Column j has ``z[0] = v[j]`` and row i (from the top) ``z[1] = v[n - 1 - i]``, with
    ``v = manifold_values(extent, n, spacing)``: z[1] grows upwards, as on a scatter plot.

    Args:
        decode: maps z Tensor [n * n, 2] to images [n * n, C, H, W] in [0, 1], e.g.
            ``lambda z: torch.sigmoid(model.decode(z))`` for an ImageVAE with ``latent_dim=2``.
            It is called once, under ``torch.no_grad()``, with the rows of the grid in reading order.
        extent: the grid spans [-extent, extent] in both dimensions (3 is +-3 prior standard deviations).
        n: images per row and per column.
        spacing: ``"linear"`` (evenly spaced) or ``"quantile"`` (Gaussian quantiles, Kingma & Welling).
        ax: draw here; default a new figure.
        device: where to make z; default the device of ``decode``'s module when it is a bound
            method (``model.decode``), else the CPU.

    Returns:
        The Axes; ticks are labelled with latent values.

    Example::

        model = build_vae(VAEConfig(latent_dim=2))   # then train or load it
        plot.latent_manifold(lambda z: torch.sigmoid(model.decode(z)), extent=2.5)

    Lesson: lessons/02_vae_mnist.ipynb
    """
    values = manifold_values(extent, n, spacing)
    z = torch.stack(torch.meshgrid(values, values.flip(0), indexing="xy"), dim=-1).reshape(n * n, 2)
    try:
        with torch.no_grad():
            images = decode(z.to(device if device is not None else config.device_of(decode)))
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"decode failed on z of shape [{n * n}, 2]: latent_manifold needs a decoder of 2-D latents "
            f"(train one with latent_dim=2; for more dims use latent_scatter). The error was: {error}"
        ) from error
    images = check_images(images, "decode(z)")
    if images.shape[0] != n * n:
        raise ValueError(f"decode returned {images.shape[0]} images for {n * n} latents; expected one per latent.")
    ax = new_axes(ax, figsize=(6, 6))
    show_grid(ax, images, nrow=n, padding=0, pad_value=0.0)
    height, width = images.shape[-2:]
    ticks = np.unique(np.linspace(0, n - 1, min(n, 7)).round().astype(int))
    ax.set_xticks((ticks + 0.5) * width - 0.5, [_tick_label(values[j]) for j in ticks])
    ax.set_yticks((ticks + 0.5) * height - 0.5, [_tick_label(values[n - 1 - i]) for i in ticks])
    ax.set(xlabel="z[0]", ylabel="z[1]", title=f"decoded latent grid ({spacing} spacing)")
    return ax
