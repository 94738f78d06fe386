"""Sound: waveforms, spectrograms (linear or mel frequency axis) and two-hand piano rolls.

Lesson: lessons/01_audio_representations.ipynb
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from coursekit import audio
from coursekit.plot.common import ArrayLike, as_tensor, new_axes


def _mono(x: ArrayLike, name: str = "x") -> torch.Tensor:
    """``x`` as a float32 CPU tensor [samples]; [1, samples] is squeezed, more channels are refused."""
    x = as_tensor(x, name)
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
    ax = new_axes(ax, figsize=(8, 2.5))
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
        colorbar: add a colorbar labelled "dB below the loudest bin" next to ``ax``.

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
    ax = new_axes(ax, figsize=(8, 3))
    if kind == "mel":
        ax.set_yscale("function", functions=(_mel, _hz))
        ax.set_yticks([f for f in (0, 500, 1000, 2000, 4000, 8000, 16000) if f <= sr / 2])
    if kind == "mel":  # band centres are evenly spaced in mel, strictly between 0 and sr / 2
        top = float(_mel(sr / 2))
        freq_edges = _hz(_cell_edges(np.linspace(0, top, db.shape[0] + 2)[1:-1], 0, top))
    else:
        freq_edges = _cell_edges(np.linspace(0, sr / 2, db.shape[0]), 0, sr / 2)
    frame_times = np.arange(db.shape[1]) * (hop_length or n_fft // 4) / sr  # frames are centred there
    time_edges = _cell_edges(frame_times, 0, len(x) / sr)
    mesh = ax.pcolormesh(time_edges, freq_edges, db.numpy(), cmap="magma", shading="flat", rasterized=True)
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title=f"{kind} spectrogram (dB)", ylim=(0, sr / 2))
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label="dB below the loudest bin")
    return ax


def _cell_edges(centres: np.ndarray, low: float, high: float) -> np.ndarray:
    """Edges [n + 1] of cells around ``centres`` [n]: half-way between neighbours, ``low`` and ``high`` outside."""
    return np.concatenate([[low], (centres[:-1] + centres[1:]) / 2, [high]])


def pianoroll(roll: ArrayLike, onsets: ArrayLike | None = None, ax: Axes | None = None) -> Axes:
    """Show a two-hand piano roll: right hand blue, left hand orange, on one MIDI pitch axis; a key both
    hands hold at once shows both inks, dark brown.

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
    ax = new_axes(ax, figsize=(8, 3.5))
    extent = (0, roll.shape[0] / STEPS_PER_QUARTER, LOWEST - 0.5, LOWEST + N_PITCHES - 0.5)
    ax.imshow(image, origin="lower", aspect="auto", extent=extent, interpolation="nearest")
    if onsets is not None:
        steps, columns = np.nonzero(onsets.numpy() > 0.5)
        ax.scatter(steps / STEPS_PER_QUARTER, LOWEST + columns % N_PITCHES, marker="|", color="k", s=30, lw=1)
    handles = [Line2D([], [], lw=6, color=c) for c in (*colors, colors.prod(axis=0))]  # both inks: dark
    ax.legend(handles, ["right hand", "left hand", "both hands"], loc="upper right", fontsize="small")
    ax.set(xlabel="time (quarter notes)", ylabel="MIDI pitch", xlim=extent[:2], ylim=extent[2:])
    return ax


def _check_roll(roll: ArrayLike, name: str, n_columns: int) -> torch.Tensor:
    roll = as_tensor(roll, name)
    if roll.dim() != 2 or roll.shape[1] != n_columns:
        hint = f" (one window of a batch: {name}[0])" if roll.dim() == 3 else ""
        raise ValueError(f"{name} has shape {list(roll.shape)}; expected [steps, {n_columns}]{hint}.")
    if roll.numel() and (roll.min() < 0 or roll.max() > 1):
        raise ValueError(f"{name} has values outside [0, 1]: model logits need torch.sigmoid({name}) first.")
    return roll


def _mel(f: np.ndarray | float) -> np.ndarray:
    """:func:`coursekit.audio.hz_to_mel` on what a matplotlib axis scale passes (arrays, maybe masked)."""
    return audio.hz_to_mel(torch.as_tensor(np.asarray(f, dtype=float)).clamp(min=0.0)).numpy()


def _hz(m: np.ndarray | float) -> np.ndarray:
    """:func:`coursekit.audio.mel_to_hz` on what a matplotlib axis scale passes."""
    return audio.mel_to_hz(torch.as_tensor(np.asarray(m, dtype=float))).numpy()
