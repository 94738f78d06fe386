"""Checks of audio arguments shared by every function of :mod:`coursekit.audio`: the signal's shape and
values, sample rates and transform sizes, each failing with an error that names the input and the fix.

Lesson: lessons/01_audio_representations.ipynb
"""

from __future__ import annotations

import numpy as np
import torch

MAX_CHANNELS = 8  # more channels than this, over at most this many samples, is a [samples, channels] tensor


# ----------------------------------------------------------------------------- checks
def check_signal(x: torch.Tensor, name: str = "x", min_rank: int = 1, max_rank: int = 3) -> None:
    """Raise a clear error unless ``x`` is a finite floating tensor of an allowed rank.

    Args:
        x: Tensor ``[samples]``, ``[channels, samples]`` or ``[batch, channels, samples]``.
        name: what to call ``x`` in the messages.
        min_rank, max_rank: the ranks allowed (1 to 3).

    Raises:
        TypeError: ``x`` is not a float tensor.
        ValueError: a rank outside ``[min_rank, max_rank]``, no samples, NaN or inf samples, or a
            ``[samples, channels]`` layout: more than ``MAX_CHANNELS`` (8) "channels" of at most 8
            samples each, such as ``[32000, 2]`` (the message suggests ``x.T``).

    Lesson: lessons/01_audio_representations.ipynb
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(x).__name__}: "
            f"wrap it with torch.as_tensor({name}, dtype=torch.float32)."
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {x.dtype}: use {name}.float().")
    if not min_rank <= x.dim() <= max_rank:
        shapes = {1: "[samples]", 2: "[channels, samples]", 3: "[batch, channels, samples]"}
        allowed = " or ".join(shapes[r] for r in range(min_rank, max_rank + 1))
        raise ValueError(f"{name} has shape {list(x.shape)} (rank {x.dim()}); expected {allowed}.")
    if x.shape[-1] == 0:
        raise ValueError(f"{name} is empty (0 samples).")
    if x.dim() >= 2 and x.shape[-1] <= MAX_CHANNELS < x.shape[-2]:
        layout, swapped, fix = (
            ("[channels, samples]", "[samples, channels]", f"{name}.T")
            if x.dim() == 2
            else ("[batch, channels, samples]", "[batch, samples, channels]", f"{name}.transpose(1, 2)")
        )
        raise ValueError(
            f"{name} has shape {list(x.shape)}: coursekit expects {layout}, not {x.shape[-2]} channels of "
            f"{x.shape[-1]} samples. This looks like {swapped} (as soundfile and numpy lay audio out). "
            f"Did you mean {fix}?"
        )
    if not torch.isfinite(x).all():
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {n_bad} NaN or inf samples: check the step that produced it "
            f"(a division by zero, a diverged model), or replace them with torch.nan_to_num({name})."
        )


def check_sr(sr: int | float, name: str = "sr") -> int:
    """Return ``sr`` as an int, or raise if it is not a positive whole number of Hz."""
    if isinstance(sr, bool) or not isinstance(sr, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number of Hz, got {type(sr).__name__}.")
    if not sr > 0 or int(sr) != sr:
        raise ValueError(f"{name}={sr} is not a valid sample rate: use a positive whole number of Hz, e.g. 16000.")
    return int(sr)


def check_int(value: int, name: str, meaning: str, fix: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise naming ``name`` and ``fix`` unless it is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an int >= {minimum} ({meaning}): {fix}.")
    return int(value)


def check_frames(n_fft: int, hop_length: int | None) -> tuple[int, int]:
    """Return ``(n_fft, hop_length)`` as ints, with the default hop ``n_fft // 4``; raise on invalid sizes."""
    n_fft = check_int(n_fft, "n_fft", "window length in samples", "pass e.g. n_fft=1024 or 512")
    if hop_length is None:
        if n_fft < 4:
            raise ValueError(
                f"n_fft={n_fft} is too small for the default hop_length (n_fft // 4 = 0): "
                "use n_fft >= 4, or pass hop_length explicitly."
            )
        return n_fft, n_fft // 4
    fix = f"pass e.g. {max(n_fft // 4, 1)} (n_fft // 4, the default), or None for that default"
    return n_fft, check_int(hop_length, "hop_length", "samples between frames", fix)


def check_length(length: int | None) -> int | None:
    if length is None:
        return None
    return check_int(length, "length", "output samples", "pass the original signal's length, x.shape[-1], or None")


def check_bins(spec: torch.Tensor, n_fft: int, name: str) -> None:
    """Raise unless ``spec`` is ``[..., n_fft // 2 + 1, frames]``, naming the n_fft it came from."""
    if spec.dim() < 2:
        raise ValueError(f"{name} has shape {list(spec.shape)}: expected [..., n_fft // 2 + 1 frequencies, frames].")
    bins = spec.shape[-2]
    if bins != n_fft // 2 + 1:
        raise ValueError(
            f"{name} has {bins} frequency bins, which is n_fft={2 * (bins - 1)}, but n_fft={n_fft} was given "
            f"({n_fft // 2 + 1} bins): pass n_fft={2 * (bins - 1)}, the n_fft of the stft that made {name}."
        )


def check_window(x: torch.Tensor, n_fft: int, name: str = "x") -> None:
    if n_fft > x.shape[-1]:
        raise ValueError(
            f"{name} has {x.shape[-1]} samples but the window is n_fft={n_fft}: "
            f"use a smaller n_fft or pad {name} (coursekit.audio.trim_or_pad)."
        )
