"""Plots the lessons share: image grids, loss curves, latent spaces, waveforms, spectrograms, piano rolls.

Every function draws into ``ax`` when given one and otherwise makes a new figure with
``matplotlib.pyplot`` (so a notebook shows it when the cell ends); it returns the ``Axes`` it drew
on (``ax.figure`` is the figure), never calls ``plt.show()`` and never closes a figure. Four plots
in one figure::

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), layout="constrained")
    plot.waveform(x, sr, ax=axes[0, 0]); plot.spectrogram(x, sr, ax=axes[0, 1])

Inputs may be torch tensors (on any device, with or without gradients) or numpy arrays.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from torchvision.utils import make_grid

from coursekit import audio

if TYPE_CHECKING:
    from coursekit.train import History

ArrayLike = torch.Tensor | np.ndarray


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax`` itself, or the axes of a new pyplot figure of ``figsize`` inches."""
    return ax if ax is not None else plt.subplots(figsize=figsize, layout="constrained")[1]


def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """A detached float32 CPU tensor, or a TypeError naming ``name``."""
    if not isinstance(x, torch.Tensor | np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}.")
    return torch.as_tensor(x).detach().cpu().float()


def _device_of(decode: Callable) -> torch.device:
    """The device of the module ``decode`` is a method of (``model.decode``), else the CPU."""
    owner = getattr(decode, "__self__", decode)
    parameter = next(owner.parameters(), None) if isinstance(owner, torch.nn.Module) else None
    return parameter.device if parameter is not None else torch.device("cpu")


# ----------------------------------------------------------------------------- images
def check_images(images: ArrayLike, name: str = "images") -> torch.Tensor:
    """Return ``images`` as a float32 CPU tensor [N, C, H, W], or raise an error that says how to fix it.

    Args:
        images: Tensor or array [N, C, H, W] with C = 1 (grey) or 3 (RGB) and pixels in [0, 1].
        name: how the error messages call the input.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    x = _as_tensor(images, name)
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


def _show_grid(ax: Axes, images: torch.Tensor, nrow: int, padding: int, pad_value: float) -> torch.Tensor:
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
    ax = _new_axes(ax, figsize=(min(n_cols, 12), min(n_rows, 12) + 0.4))
    _show_grid(ax, x, nrow, padding, pad_value)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax


# ----------------------------------------------------------------------------- training
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
    ax = _new_axes(ax, figsize=(6, 3.5))
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


# ----------------------------------------------------------------------------- latent spaces
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
    z = _as_tensor(z, "z").double()
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
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        return cmap(np.searchsorted(classes, values)), {str(c): cmap(i) for i, c in enumerate(classes)}
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
    z = _as_tensor(z, "z")
    if z.dim() != 2 or z.shape[1] < 2 or z.shape[0] < 2:
        raise ValueError(f"z has shape {list(z.shape)}; expected [N, D] with N >= 2 latents of D >= 2 dims.")
    if z.shape[1] == 2:
        points, axis_labels = z, ("z[0]", "z[1]")
    else:
        points, explained = pca_2d(z)
        axis_labels = [f"PC {i + 1} of z ({100 * float(e):.0f}% of variance)" for i, e in enumerate(explained)]
    colors, classes = _label_colors(labels, len(z)) if labels is not None else (None, None)
    ax = _new_axes(ax, figsize=(5.5, 4.5))
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
            images = decode(z.to(device if device is not None else _device_of(decode)))
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"decode failed on z of shape [{n * n}, 2]: latent_manifold needs a decoder of 2-D latents "
            f"(train one with latent_dim=2; for more dims use latent_scatter). The error was: {error}"
        ) from error
    images = check_images(images, "decode(z)")
    if images.shape[0] != n * n:
        raise ValueError(f"decode returned {images.shape[0]} images for {n * n} latents; expected one per latent.")
    ax = _new_axes(ax, figsize=(6, 6))
    _show_grid(ax, images, nrow=n, padding=0, pad_value=0.0)
    height, width = images.shape[-2:]
    ticks = np.unique(np.linspace(0, n - 1, min(n, 7)).round().astype(int))
    ax.set_xticks((ticks + 0.5) * width - 0.5, [f"{values[j]:.2g}" for j in ticks])
    ax.set_yticks((ticks + 0.5) * height - 0.5, [f"{values[n - 1 - i]:.2g}" for i in ticks])
    ax.set(xlabel="z[0]", ylabel="z[1]", title=f"decoded latent grid ({spacing} spacing)")
    return ax


# ----------------------------------------------------------------------------- audio
def _mono(x: ArrayLike, name: str = "x") -> torch.Tensor:
    """``x`` as a float32 CPU tensor [samples]; [1, samples] is squeezed, more channels are refused."""
    x = _as_tensor(x, name)
    audio.check_signal(x, name, max_rank=2)
    if x.dim() == 2 and x.shape[0] != 1:
        raise ValueError(f"{name} has shape {list(x.shape)}: plot one channel, e.g. coursekit.audio.to_mono({name}).")
    return x.reshape(-1)


def waveform(x: ArrayLike, sr: int, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Plot a signal against time in seconds.

    Args:
        x: Tensor [samples] or [1, samples], values in [-1, 1].
        sr: sample rate in Hz.
        ax: draw here; default a new figure.
        title: axes title (default none).

    Returns:
        The Axes; x axis from 0 to ``samples / sr`` seconds.

    Example::

        x = coursekit.synth.pluck(220.0, 1.0, 16000)
        plot.waveform(x, 16000, title="a plucked string")

    Lesson: lessons/01_audio_representations.ipynb
    """
    x, sr = _mono(x), audio.check_sr(sr)
    ax = _new_axes(ax, figsize=(8, 2.5))
    ax.plot(np.arange(len(x)) / sr, x.numpy(), lw=0.6)
    ax.set(xlabel="time (s)", ylabel="amplitude", xlim=(0, len(x) / sr))
    if title is not None:
        ax.set_title(title)
    return ax


def spectrogram(
    x: ArrayLike,
    sr: int,
    kind: str = "mel",
    ax: Axes | None = None,
    n_fft: int = 1024,
    hop_length: int | None = None,
    n_mels: int = 64,
    floor_db: float = -80.0,
    colorbar: bool = True,
) -> Axes:
    """Plot a spectrogram in dB (0 dB = loudest bin) against time (s) and frequency (Hz).

    ``"linear"`` draws ``|STFT|`` (:func:`coursekit.audio.stft`) on a linear Hz axis; ``"mel"``
    draws the mel spectrogram (:func:`coursekit.audio.melspectrogram`) on an axis spaced in mel
    and labelled in Hz, so its equal-width bands look equally tall.

    Args:
        x: Tensor [samples] or [1, samples].
        sr: sample rate in Hz; the frequency axis ends at ``sr / 2``.
        kind: ``"mel"`` or ``"linear"``.
        ax: draw here; default a new figure.
        n_fft: window length in samples; hop_length: frame step (default ``n_fft // 4``).
        n_mels: mel bands (``"mel"`` only).
        floor_db: values below this many dB under the maximum are shown at the floor.
        colorbar: add a colorbar labelled dB next to ``ax``.

    Returns:
        The Axes; the image is ``ax.collections[0]`` (a QuadMesh of [bins, frames] dB values),
        spanning 0 to ``samples / sr`` seconds and 0 to ``sr / 2`` Hz. Each value is a cell
        around its frame's centre time and its bin's centre frequency (mel: its band's centre).

    Example::

        x = coursekit.synth.pluck(220.0, 1.0, 16000)
        plot.spectrogram(x, 16000, kind="linear")

    Lesson: lessons/01_audio_representations.ipynb
    """
    x, sr = _mono(x), audio.check_sr(sr)
    if kind == "linear":
        mag = audio.stft(x, n_fft=n_fft, hop_length=hop_length).abs()
    elif kind == "mel":
        mag = audio.melspectrogram(x, sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels).sqrt()
    else:
        raise ValueError(f"kind={kind!r}: use 'mel' or 'linear'.")
    db = audio.amplitude_to_db(mag, floor_db=floor_db)
    ax = _new_axes(ax, figsize=(8, 3))
    if kind == "mel":
        ax.set_yscale("function", functions=(_hz_to_mel, _mel_to_hz))
        ax.set_yticks([f for f in (0, 500, 1000, 2000, 4000, 8000, 16000) if f <= sr / 2])
    if kind == "mel":  # band centres are evenly spaced in mel, strictly between 0 and sr / 2
        top = float(_hz_to_mel(sr / 2))
        freq_edges = _mel_to_hz(_cell_edges(np.linspace(0, top, db.shape[0] + 2)[1:-1], 0, top))
    else:
        freq_edges = _cell_edges(np.linspace(0, sr / 2, db.shape[0]), 0, sr / 2)
    frame_times = np.arange(db.shape[1]) * (hop_length or n_fft // 4) / sr  # frames are centred there
    time_edges = _cell_edges(frame_times, 0, len(x) / sr)
    mesh = ax.pcolormesh(time_edges, freq_edges, db.numpy(), cmap="magma", shading="flat", rasterized=True)
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=f"{kind} spectrogram (dB)", ylim=(0, sr / 2))
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label="dB")
    return ax


def _cell_edges(centres: np.ndarray, low: float, high: float) -> np.ndarray:
    """Edges [n + 1] of cells around ``centres`` [n]: half-way between neighbours, ``low`` and ``high`` outside."""
    return np.concatenate([[low], (centres[:-1] + centres[1:]) / 2, [high]])


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """:func:`coursekit.audio.hz_to_mel` in numpy (the axis scale calls it with masked arrays)."""
    return 2595.0 * np.log10(np.maximum(1.0 + np.asarray(f, dtype=float) / 700.0, 1e-10))


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    """:func:`coursekit.audio.mel_to_hz` in numpy."""
    return 700.0 * (10 ** (np.asarray(m, dtype=float) / 2595.0) - 1.0)


# ----------------------------------------------------------------------------- music
def pianoroll(roll: ArrayLike, onsets: ArrayLike | None = None, ax: Axes | None = None) -> Axes:
    """Show a two-hand piano roll: right hand blue, left hand orange, on one MIDI pitch axis.

    Args:
        roll: Tensor [steps, 102] in [0, 1] (0/1, or a model's note probabilities, drawn as
            shades), columns laid out as in :mod:`coursekit.data.pianoroll`: 0-50 right hand,
            51-101 left hand, MIDI pitches 34..84 each.
        onsets: optional 0/1 [steps, 102]; note starts are marked with a black tick.
        ax: draw here; default a new figure.

    Returns:
        The Axes; x in quarter notes (4 steps each) from 0 to ``steps / 4``, y in MIDI pitch.

    Example::

        item = PianoRolls(window=64, max_pieces=2)[0]
        plot.pianoroll(item["roll"], item["onsets"])

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    from coursekit.data.pianoroll import LOWEST, N_COLUMNS, N_PITCHES, STEPS_PER_QUARTER  # imports music21: slow

    roll = _check_roll(roll, "roll", N_COLUMNS)
    onsets = _check_roll(onsets, "onsets", N_COLUMNS) if onsets is not None else None
    hands = roll.T.reshape(2, N_PITCHES, -1).numpy()  # [hand, pitch, steps]
    colors = np.array([[0.12, 0.47, 0.71], [1.0, 0.5, 0.05]])  # matplotlib's C0 and C1
    image = np.prod([1 - hands[h][..., None] * (1 - colors[h]) for h in range(2)], axis=0)  # like two inks
    ax = _new_axes(ax, figsize=(8, 3.5))
    extent = (0, roll.shape[0] / STEPS_PER_QUARTER, LOWEST - 0.5, LOWEST + N_PITCHES - 0.5)
    ax.imshow(image, origin="lower", aspect="auto", extent=extent, interpolation="nearest")
    if onsets is not None:
        steps, columns = np.nonzero(onsets.numpy() > 0.5)
        ax.scatter(steps / STEPS_PER_QUARTER, LOWEST + columns % N_PITCHES, marker="|", color="k", s=30, lw=1)
    handles = [Line2D([], [], lw=6, color=c) for c in colors]
    ax.legend(handles, ["right hand", "left hand"], loc="upper right", fontsize="small")
    ax.set(xlabel="time (quarter notes)", ylabel="MIDI pitch", xlim=extent[:2], ylim=extent[2:])
    return ax


def _check_roll(roll: ArrayLike, name: str, n_columns: int) -> torch.Tensor:
    roll = _as_tensor(roll, name)
    if roll.dim() != 2 or roll.shape[1] != n_columns:
        hint = f" (one window of a batch: {name}[0])" if roll.dim() == 3 else ""
        raise ValueError(f"{name} has shape {list(roll.shape)}; expected [steps, {n_columns}]{hint}.")
    if roll.numel() and (roll.min() < 0 or roll.max() > 1):
        raise ValueError(f"{name} has values outside [0, 1]: model logits need torch.sigmoid({name}) first.")
    return roll
