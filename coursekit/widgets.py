"""Sliders in latent space: move a latent and see or hear what the decoder makes of it.

Both widgets take a ``render`` callable that decodes a batch of one latent, ``z [1, latent_dim]``:

- ``kind="image"``: ``render(z)`` returns images ``[1, C, H, W]`` (or ``[C, H, W]``) in [0, 1],
  e.g. ``lambda z: torch.sigmoid(model.decode(z))`` for an ImageVAE (its ``decode`` gives logits);
- ``kind="audio"``: ``render(z)`` returns ``(x, sr)``, a signal ``[samples]`` (or ``[1, 1, samples]``)
  in [-1, 1] and its sample rate in Hz; the widget shows an audio player and the mel spectrogram.

Each widget is an ``ipywidgets.VBox`` (the last line of a cell displays it) that also exposes its
parts, so code and tests can drive it without a browser: ``.sliders``/``.slider``, ``.z`` (the
latent shown now), ``.rendered`` (what ``render`` last returned), ``.image`` and ``.audio`` (the
display widgets, PNG and WAV bytes in ``.value``) and ``.update()``.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import numpy as np
import soundfile as sf
import torch
from matplotlib.figure import Figure
from PIL import Image
from torchvision.utils import make_grid

from coursekit import audio, config, plot
from coursekit.interpolation import interpolate

KINDS = ("image", "audio")


# ----------------------------------------------------------------------------- what the widgets show
def images_to_png(images: torch.Tensor, width: int = 224) -> bytes:
    """PNG bytes of a batch of images laid out by ``make_grid``, enlarged by a whole factor with sharp pixels.

    Args:
        images: Tensor [N, C, H, W] (or [C, H, W]) in [0, 1], C = 1 or 3.
        width: the grid is scaled up by the largest whole factor that keeps it at most this wide (at least 1).

    Returns:
        The PNG file as bytes, an RGB image.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    images = torch.as_tensor(images).detach().cpu()
    images = plot.check_images(images.unsqueeze(0) if images.dim() == 3 else images, "render(z)")
    grid = make_grid(images, nrow=8, padding=2 if len(images) > 1 else 0, pad_value=0.5).expand(3, -1, -1)
    pixels = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    scale = max(1, width // pixels.shape[1])
    picture = Image.fromarray(pixels).resize((pixels.shape[1] * scale, pixels.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="png")
    return buffer.getvalue()


def _signal(rendered: object) -> tuple[torch.Tensor, int]:
    """``render``'s ``(x, sr)`` as a float32 CPU tensor [samples] and an int, or a clear error."""
    if not (isinstance(rendered, tuple | list) and len(rendered) == 2):
        raise TypeError(f"render(z) must return (x, sr) for kind='audio', got {type(rendered).__name__}.")
    x, sr = rendered
    x = torch.as_tensor(x).detach().cpu().float()
    if x.dim() == 0 or math.prod(x.shape[:-1]) != 1:
        raise ValueError(f"render(z) returned x of shape {list(x.shape)}: expected one signal, [samples].")
    x = x.reshape(-1)
    audio.check_signal(x, "render(z)'s x")
    return x, audio.check_sr(sr, "render(z)'s sr")


def signal_to_wav(x: torch.Tensor, sr: int) -> bytes:
    """16-bit WAV bytes of ``x [samples]`` at ``sr`` Hz; a signal louder than [-1, 1] is scaled down to fit.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    data = x.detach().cpu().double().numpy().reshape(-1)
    peak = float(np.abs(data).max(initial=0.0))
    buffer = io.BytesIO()
    sf.write(buffer, data / peak if peak > 1 else data, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _spectrogram_png(x: torch.Tensor, sr: int) -> bytes:
    """PNG bytes of :func:`coursekit.plot.spectrogram` of ``x``, drawn off pyplot (no figure is left open)."""
    figure = Figure(figsize=(4, 2.4), dpi=80, layout="constrained")
    n_fft = min(1024, 2 ** int(math.log2(len(x))))
    plot.spectrogram(x, sr, n_fft=n_fft, ax=figure.add_subplot(), colorbar=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


class _LatentWidget(widgets.VBox):
    """Controls on the left, what ``render(z)`` made on the right, and a status line for errors."""

    def __init__(self, render: Callable, kind: str, controls: list[widgets.Widget], device, autoplay: bool):
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: use 'image' (render returns images) or 'audio' (it returns (x, sr)).")
        if not callable(render):
            raise TypeError(f"render must be a function of z [1, latent_dim], got {type(render).__name__}.")
        self.render, self.kind = render, kind
        self.device = torch.device(device) if device is not None else config.device_of(render)
        self.image = widgets.Image(format="png")
        self.audio = widgets.Audio(format="wav", autoplay=autoplay, loop=False) if kind == "audio" else None
        self.status = widgets.HTML()
        self.rendered = None
        shown = [self.image] if self.audio is None else [self.audio, self.image]
        super().__init__([widgets.HBox([widgets.VBox(controls), widgets.VBox(shown)]), self.status])

    @property
    def z(self) -> torch.Tensor:
        raise NotImplementedError

    def update(self) -> None:
        """Render the current ``z`` and show it (the sliders call this when they move)."""
        with torch.no_grad():
            rendered = self.render(self.z.unsqueeze(0).to(self.device))
        if self.kind == "image":
            self.image.value = images_to_png(rendered)
        else:
            x, sr = _signal(rendered)
            self.audio.value = signal_to_wav(x, sr)
            self.image.value = _spectrogram_png(x, sr)
        self.rendered = rendered
        self.status.value = ""

    def _on_change(self, change: dict) -> None:
        # An exception raised in a slider callback never reaches the notebook cell (it goes to the
        # browser's log), so show it under the widget instead.
        try:
            self.update()
        except Exception as error:
            self.status.value = f"<b>render(z) failed:</b> {html.escape(f'{type(error).__name__}: {error}')}"


# ----------------------------------------------------------------------------- latent explorer
class LatentExplorer(_LatentWidget):
    """Sliders for some latent dimensions; the others stay at ``base_z``. Built by :func:`latent_explorer`.

    Attributes:
        sliders: one ``FloatSlider`` per explored dimension, in the order of ``dims``.
        dims: the latent dimensions the sliders set.
        z: the latent shown now, Tensor [latent_dim] on the CPU.

    Lesson: lessons/02_vae_mnist.ipynb
    """

    def __init__(self, render, dims, base_z, kind, extent, step, device, autoplay):
        self.dims, self.base_z = dims, base_z
        self.sliders = [_slider(f"z[{d}]", float(base_z[d]), extent, step, kind) for d in dims]
        super().__init__(render, kind, self.sliders, device, autoplay)
        self.update()
        for slider in self.sliders:
            slider.observe(self._on_change, names="value")

    @property
    def z(self) -> torch.Tensor:
        z = self.base_z.clone()
        z[list(self.dims)] = torch.tensor([slider.value for slider in self.sliders], dtype=z.dtype)
        return z


def _slider(description: str, value: float, extent: float, step: float, kind: str) -> widgets.FloatSlider:
    """A slider over [-extent, extent] (widened to hold ``value``); images update while dragging, audio on release."""
    return widgets.FloatSlider(
        value=value, min=min(-extent, value), max=max(extent, value), step=step, description=description,
        continuous_update=kind == "image", readout_format=".2f",
    )


def _check_dims(latent_dim: int, n_sliders: int | None, dims: Sequence[int] | None) -> list[int]:
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"latent_dim={latent_dim!r} must be a whole number >= 1: the size of z the decoder takes.")
    if dims is not None and n_sliders is not None:
        raise ValueError("give n_sliders (the first n dimensions) or dims (which ones), not both.")
    if dims is None:
        n_sliders = min(latent_dim, 8) if n_sliders is None else n_sliders
        if isinstance(n_sliders, bool) or not isinstance(n_sliders, int) or not 1 <= n_sliders <= latent_dim:
            raise ValueError(f"n_sliders={n_sliders!r} must be between 1 and latent_dim={latent_dim}.")
        return list(range(n_sliders))
    dims = [int(d) for d in dims]
    if not dims or len(set(dims)) != len(dims) or not all(0 <= d < latent_dim for d in dims):
        raise ValueError(f"dims={dims} must be distinct dimensions in 0..{latent_dim - 1} (latent_dim={latent_dim}).")
    return dims


def _check_base(base_z: torch.Tensor | None, latent_dim: int) -> torch.Tensor:
    if base_z is None:
        return torch.zeros(latent_dim)
    base = torch.as_tensor(base_z).detach().cpu().float()
    if base.numel() != latent_dim or (base.dim() > 1 and base.shape[-1] != latent_dim):
        raise ValueError(f"base_z has shape {list(base.shape)}; expected [{latent_dim}] (or [1, {latent_dim}]).")
    return base.reshape(latent_dim)


def latent_explorer(
    render: Callable[[torch.Tensor], object],
    latent_dim: int,
    n_sliders: int | None = None,
    dims: Sequence[int] | None = None,
    base_z: torch.Tensor | None = None,
    kind: str = "image",
    extent: float = 3.0,
    step: float = 0.05,
    device: torch.device | str | None = None,
    autoplay: bool = True,
) -> LatentExplorer:
    """Sliders for latent dimensions and the decoded image or sound, updated as they move.

    Args:
        render: decodes ``z [1, latent_dim]`` (see the module docstring for what it returns per ``kind``);
            called under ``torch.no_grad()``. Call ``model.eval()`` first.
        latent_dim: size of z.
        n_sliders: slide the first ``n_sliders`` dimensions (default ``min(latent_dim, 8)``).
        dims: or slide these dimensions, e.g. the active units from ``coursekit.metrics.active_units``.
        base_z: Tensor [latent_dim], the value of every dimension (default zeros, the prior's mean);
            e.g. the encoding of one digit, to vary it one dimension at a time.
        kind: ``"image"`` or ``"audio"``.
        extent: sliders span [-extent, extent] (prior standard deviations).
        step: slider resolution.
        device: where ``render`` gets z; default the device of its module for a bound method (``model.decode``).
        autoplay: for audio, play each new sound as soon as a slider is released.

    Returns:
        A :class:`LatentExplorer` (an ``ipywidgets.VBox``), already showing ``render(base_z)``.

    Example::

        model.eval()
        latent_explorer(lambda z: torch.sigmoid(model.decode(z)), latent_dim=16, n_sliders=4)

    Lesson: lessons/02_vae_mnist.ipynb
    """
    dims = _check_dims(latent_dim, n_sliders, dims)
    base = _check_base(base_z, latent_dim)
    if not extent > 0 or not step > 0:
        raise ValueError(f"extent={extent!r} and step={step!r} must both be positive.")
    return LatentExplorer(render, dims, base, kind, extent, step, device, autoplay)


# ----------------------------------------------------------------------------- interpolation slider
class InterpolationSlider(_LatentWidget):
    """A slider ``t`` in [0, 1] from ``z_a`` to ``z_b``. Built by :func:`interpolation_slider`.

    Attributes:
        slider: the ``FloatSlider`` of ``t``.
        z_a, z_b: the end points, Tensors [latent_dim] on the CPU.
        mode: ``"linear"`` or ``"slerp"``.
        z: the latent shown now, ``interpolate(z_a, z_b, slider.value, mode)``.

    Lesson: lessons/02_vae_mnist.ipynb
    """

    def __init__(self, render, z_a, z_b, mode, kind, steps, device, autoplay):
        self.z_a, self.z_b, self.mode = z_a, z_b, mode
        self.slider = widgets.FloatSlider(
            value=0.0, min=0.0, max=1.0, step=1 / steps, description="t", continuous_update=kind == "image",
            readout_format=".2f",
        )
        super().__init__(render, kind, [self.slider], device, autoplay)
        self.update()
        self.slider.observe(self._on_change, names="value")

    @property
    def z(self) -> torch.Tensor:
        return interpolate(self.z_a, self.z_b, self.slider.value, self.mode)


def _encoded(encode: Callable | None, value: torch.Tensor, name: str) -> torch.Tensor:
    """``value`` as a latent [latent_dim]: encoded first when ``encode`` is given (``mu`` of ``(mu, logvar)``)."""
    if encode is not None:
        with torch.no_grad():
            value = encode(value)
        value = value[0] if isinstance(value, tuple | list) else value
    z = torch.as_tensor(value).detach().cpu().float()
    if z.dim() == 2 and z.shape[0] == 1:
        z = z[0]
    if z.dim() != 1:
        what = f"encode({name})" if encode is not None else name
        raise ValueError(f"{what} has shape {list(z.shape)}; expected one latent, [latent_dim] or [1, latent_dim].")
    return z


def interpolation_slider(
    render: Callable[[torch.Tensor], object],
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    mode: str = "linear",
    kind: str = "image",
    encode: Callable | None = None,
    steps: int = 20,
    device: torch.device | str | None = None,
    autoplay: bool = True,
) -> InterpolationSlider:
    """A slider ``t`` from ``z_a`` (t = 0) to ``z_b`` (t = 1) and the decoded image or sound at ``t``.

    Args:
        render: decodes ``z [1, latent_dim]`` (see the module docstring for what it returns per ``kind``).
        z_a, z_b: the two latents, Tensors [latent_dim] (or [1, latent_dim]); with ``encode``, the
            two inputs to encode instead (e.g. two images [1, 1, 28, 28]).
        mode: ``"linear"`` (:func:`coursekit.interpolation.lerp`) or ``"slerp"``
            (:func:`coursekit.interpolation.slerp`, along the sphere).
        kind: ``"image"`` or ``"audio"``.
        encode: maps an input to its latent, or to ``(mu, logvar)`` (``mu`` is used), e.g. ``model.encode``.
        steps: slider positions between 0 and 1 (the step is ``1 / steps``).
        device: where ``render`` gets z; default the device of its module for a bound method.
        autoplay: for audio, play each new sound as soon as the slider is released.

    Returns:
        An :class:`InterpolationSlider` (an ``ipywidgets.VBox``), showing ``t = 0``.

    Example::

        interpolation_slider(lambda z: torch.sigmoid(model.decode(z)), images[0:1], images[1:2],
                             encode=model.encode, mode="slerp")

    Lesson: lessons/02_vae_mnist.ipynb
    """
    z_a, z_b = _encoded(encode, z_a, "z_a"), _encoded(encode, z_b, "z_b")
    interpolate(z_a, z_b, 0.5, mode)  # fails early, with its message, for bad shapes, modes and slerp ends
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a whole number >= 1.")
    return InterpolationSlider(render, z_a, z_b, mode, kind, steps, device, autoplay)


# ----------------------------------------------------------------------------- listening grid (lesson 08)
def listening_grid(sounds: dict[str, dict[str, torch.Tensor]], sr: int, title: str = "") -> widgets.HTML:
    """A table of audio players: one row per key of ``sounds``, one column per key of its dicts.

    Args:
        sounds: ``{row: {column: signal [samples] or [1, samples]}}``, e.g. families as rows and
            models as columns; a missing cell is left empty. Signals louder than [-1, 1] are scaled down.
        sr: their sample rate in Hz.
        title: a caption above the table.

    Returns:
        An ``ipywidgets.HTML`` (the last line of a cell displays it); ``.value`` holds the table, each
        player's sound inline as a base64 WAV, so the notebook plays offline and keeps its sounds.

    Lesson: lessons/08_model_comparison.ipynb
    """
    import base64

    if not sounds or not all(isinstance(row, dict) for row in sounds.values()):
        raise ValueError("sounds must be {row name: {column name: signal}} with at least one row.")
    columns = list(dict.fromkeys(column for row in sounds.values() for column in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    rows = []
    for name, row in sounds.items():
        cells = []
        for column in columns:
            if column not in row:
                cells.append("<td></td>")
                continue
            wav = base64.b64encode(signal_to_wav(torch.as_tensor(row[column]).reshape(-1), sr)).decode("ascii")
            cells.append(f'<td><audio controls preload="none" style="width:150px" '
                         f'src="data:audio/wav;base64,{wav}"></audio></td>')  # fmt: skip
        rows.append(f"<tr><th>{html.escape(str(name))}</th>{''.join(cells)}</tr>")
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return widgets.HTML(f"<table>{caption}<tr><th></th>{head}</tr>{''.join(rows)}</table>")
