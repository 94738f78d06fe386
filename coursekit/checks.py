"""Checks that say what is wrong and how to fix it, for students' code and for the library's inputs.

Each returns quietly when the value is right and raises an error that teaches when it is not::

    check_shape(x, [16, 1, 28, 28], "x")
    # ValueError: x: expected [16, 1, 28, 28], got [16, 784]: the same 12544 numbers in another
    # shape: did you forget to reshape (x.view(16, 1, 28, 28))?
    check_close(my_kl, coursekit.losses.kl_normal(mu, logvar), "my_kl")
    check_audio(wave, sr=16000, expected_sr=16000, name="wave")   # finite, not silent, not clipped

``None`` in an expected shape matches any size. The lessons and assignments call them after a
student's cell; the models call :func:`check_batch`, :func:`check_whole` and
:func:`check_probability` on their inputs. This module needs only torch, so every layer may use it.

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

SILENCE_DB = -60.0  # RMS below this (dB re full scale) counts as silence
CLIP_LEVEL = 0.999  # samples at or above this magnitude count as clipped
CLIP_FRACTION = 0.001  # more than this fraction of clipped samples is reported


def _shape_text(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("any" if s is None else str(s) for s in shape) + "]"


def _shape_hint(got: tuple[int, ...], expected: Sequence[int | None], name: str) -> str:
    """Why a tensor of shape ``got`` may not be ``expected``: a reshape, a missing or extra axis, swapped axes."""
    if len(got) + 1 == len(expected):
        return f": one axis is missing: did you forget {name}.unsqueeze(...) (a batch or channel axis)?"
    if len(got) == len(expected) + 1:
        return f": one axis too many: did you forget {name}.squeeze(...) or to index one item?"
    if all(s is not None for s in expected) and math.prod(got) == math.prod(expected):
        if len(got) == 2 and tuple(got) == tuple(reversed(expected)):
            return f": the axes look swapped: did you mean {name}.T (or .transpose)?"
        target = ", ".join(map(str, expected))
        numbers = math.prod(got)
        return f": the same {numbers} numbers in another shape: did you forget to reshape ({name}.view({target}))?"
    return ""


def check_shape(x: torch.Tensor, expected: Sequence[int | None], name: str = "x") -> None:
    """Raise unless ``x`` is a Tensor of shape ``expected`` (``None`` matches any size on that axis).

    Raises:
        TypeError: ``x`` is not a Tensor.
        ValueError: naming both shapes and the likely slip (reshape, unsqueeze, squeeze, transpose).

    Lesson: lessons/00_tour.ipynb
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} should be a torch.Tensor of shape {_shape_text(expected)}, got {type(x).__name__}.")
    got = tuple(x.shape)
    matches = len(got) == len(expected) and all(e is None or g == e for g, e in zip(got, expected, strict=True))
    if not matches:
        hint = _shape_hint(got, expected, name)
        raise ValueError(f"{name}: expected {_shape_text(expected)}, got {list(got)}{hint}")


def check_close(
    actual: torch.Tensor | float, expected: torch.Tensor | float, name: str = "value", rtol: float = 1e-4,
    atol: float = 1e-6,
) -> None:
    """Raise unless ``actual`` equals ``expected`` within ``atol + rtol * |expected|`` everywhere.

    Raises:
        ValueError: naming the shapes when they differ, else the largest difference, where it is,
            and both values there.

    Lesson: lessons/00_tour.ipynb
    """
    a = torch.as_tensor(actual, dtype=torch.float64).detach().cpu()
    e = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
    if a.shape != e.shape:
        hint = _shape_hint(tuple(a.shape), list(e.shape), name)
        raise ValueError(f"{name}: expected shape {list(e.shape)}, got {list(a.shape)}{hint}")
    if not torch.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf: look for a log or a division of zero in the code that made it.")
    error = (a - e).abs()
    allowed = atol + rtol * e.abs()
    if (error > allowed).any():
        flat = int(torch.argmax(error - allowed))
        where = list(torch.unravel_index(torch.tensor(flat), a.shape)) if a.dim() else []
        at = f" at index {[int(i) for i in where]}" if where else ""
        raise ValueError(
            f"{name} differs from the expected value by up to {float(error.max()):.3g}{at}: got "
            f"{float(a.flatten()[flat]):.6g}, expected {float(e.flatten()[flat]):.6g} "
            f"(tolerance {float(allowed.flatten()[flat]):.3g})."
        )


def check_audio(x: torch.Tensor, sr: int, expected_sr: int | None = None, name: str = "audio") -> None:
    """Raise unless ``x`` is playable audio: finite, in [-1, 1] without clipping, not silent, at the right rate.

    Args:
        x: Tensor ``[samples]``, ``[channels, samples]`` or ``[batch, channels, samples]``.
        sr: its sample rate in Hz.
        expected_sr: the rate it should have, if known.
        name: what to call it in messages.

    Raises:
        TypeError, ValueError: naming what is wrong (NaN, silence below -60 dB RMS, clipping of more
            than 0.1 % of the samples, the wrong rate) and the usual fix.

    Lesson: lessons/00_tour.ipynb
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name} should be a float torch.Tensor of samples in [-1, 1], got {got}.")
    if x.numel() == 0:
        raise ValueError(f"{name} holds no samples (shape {list(x.shape)}).")
    if expected_sr is not None and sr != expected_sr:
        raise ValueError(f"{name} is at {sr} Hz but {expected_sr} Hz is expected: resample it "
                         f"(coursekit.audio.resample(x, {sr}, {expected_sr})).")  # fmt: skip
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf: the model or step that made it diverged.")
    rms_db = 20 * math.log10(max(float(x.double().pow(2).mean().sqrt()), 1e-12))
    if rms_db < SILENCE_DB:
        raise ValueError(f"{name} is silent: RMS {rms_db:.1f} dB, below {SILENCE_DB:.0f} dB. A decoder that "
                         "outputs silence has often collapsed to the mean of its data.")  # fmt: skip
    clipped = float((x.abs() >= CLIP_LEVEL).double().mean())
    if clipped > CLIP_FRACTION:
        peak = float(x.abs().max())
        raise ValueError(f"{name} clips: {100 * clipped:.2f}% of its samples reach {CLIP_LEVEL} (peak {peak:.3f}); "
                         "scale it with coursekit.audio.peak_normalize(x, 0.9).")  # fmt: skip


def check_whole(value: object, name: str, lowest: int = 1) -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) ``>= lowest``.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ValueError(f"{name}={value!r} must be a whole number >= {lowest}.")


def check_probability(value: object, name: str) -> None:
    """Raise ValueError unless ``value`` is a number strictly between 0 and 1.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(f"{name}={value!r} must be a probability strictly between 0 and 1 (e.g. 0.5).")


def check_batch(t: object, shape: tuple[int, ...], name: str) -> None:
    """Raise unless ``t`` is a finite float Tensor ``[batch, *shape]``.

    Raises:
        TypeError: not a float Tensor. ValueError: another shape (suggesting ``unsqueeze(0)`` when only
            the batch axis is missing), or NaN/inf.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise TypeError(f"{name} must be a float torch.Tensor [batch, {', '.join(map(str, shape))}], got {got}.")
    if t.dim() != len(shape) + 1 or tuple(t.shape[1:]) != tuple(shape):
        same = tuple(t.shape) == tuple(shape)
        hint = f"add the batch dimension with {name}.unsqueeze(0)" if same else "check what produced it"
        raise ValueError(f"{name} has shape {list(t.shape)}; expected [batch, {', '.join(map(str, shape))}]: {hint}.")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf: check the step that produced it.")
