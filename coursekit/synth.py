"""Tiny synthesisers for test signals with known content: sines, chirps, harmonic tones, plucks.

They give lessons and tests sounds whose pitch and spectrum are known exactly. The course's
instrument sounds come from a real soundfont (``coursekit.data``); these are for measurement.
All return float32 Tensors ``[samples]`` in [-1, 1].

Lesson: lessons/01_audio_representations.ipynb
"""

from __future__ import annotations

import math

import torch

from coursekit.audio import check_sr


def _n_samples(duration: float, sr: int) -> int:
    sr = check_sr(sr)
    if not duration > 0:
        raise ValueError(f"duration={duration} s must be positive.")
    return int(round(duration * sr))


def sine(freq: float, duration: float, sr: int, amp: float = 0.5, phase: float = 0.0) -> torch.Tensor:
    """``amp * sin(2 pi freq t + phase)`` for ``duration`` seconds at ``sr`` Hz."""
    t = torch.arange(_n_samples(duration, sr), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t + phase)).float()


def chirp(f0: float, f1: float, duration: float, sr: int, amp: float = 0.5) -> torch.Tensor:
    """A sine sweeping exponentially from ``f0`` to ``f1`` Hz (equal time per octave)."""
    if not (f0 > 0 and f1 > 0):
        raise ValueError(f"f0={f0} and f1={f1} must both be positive for an exponential sweep.")
    n = _n_samples(duration, sr)
    t = torch.arange(n, dtype=torch.float64) / sr
    k = math.log(f1 / f0) / duration
    phase = 2 * math.pi * f0 * (torch.expm1(k * t) / k if k != 0 else t)
    return (amp * torch.sin(phase)).float()


def harmonic_tone(
    f0: float, duration: float, sr: int, n_harmonics: int = 8, phases: torch.Tensor | None = None, amp: float = 0.5
) -> torch.Tensor:
    """A sum of harmonics ``k f0`` with amplitude ``1/k``, each with its own phase (radians).

    Two tones with the same ``f0`` but different ``phases`` have the same magnitude spectrum
    and different waveforms. Harmonics at or above Nyquist are left out. The gain does not
    depend on the phases, ``amp / sum(1/k)``, so the peak is at most ``amp`` (exactly ``amp``
    when all phases are 0).
    """
    if not f0 > 0:
        raise ValueError(f"f0={f0} Hz must be positive.")
    t = torch.arange(_n_samples(duration, sr), dtype=torch.float64) / sr
    ks = [k for k in range(1, n_harmonics + 1) if k * f0 < sr / 2]
    if not ks:
        raise ValueError(f"f0={f0} Hz is at or above Nyquist ({sr / 2} Hz): no harmonic fits.")
    phases = torch.zeros(len(ks)) if phases is None else torch.as_tensor(phases, dtype=torch.float64)
    if phases.numel() < len(ks):
        raise ValueError(f"phases has {phases.numel()} values but {len(ks)} harmonics fit below Nyquist.")
    x = sum(torch.sin(2 * math.pi * k * f0 * t + float(phases[i])) / k for i, k in enumerate(ks))
    return (amp * x / sum(1.0 / k for k in ks)).float()


def pluck(
    freq: float,
    duration: float,
    sr: int,
    decay: float = 0.996,
    amp: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A plucked string by the Karplus-Strong algorithm.

    A burst of noise one period long circulates in a delay line; each pass averages neighbouring
    samples (a low-pass filter) and scales by ``decay``, so high harmonics die first, as on a real
    string. Averaging two neighbours delays the loop by half a sample more, so the pitch is
    ``sr / (period - 0.5)`` with ``period = round(sr / freq + 0.5)`` samples: within a few cents of
    ``freq`` at low pitches, further off at high ones (the delay can only be a whole sample).
    """
    if not freq > 0:
        raise ValueError(f"freq={freq} Hz must be positive.")
    n = _n_samples(duration, sr)
    if freq >= sr / 2:
        raise ValueError(f"freq={freq} Hz is too high for sr={sr} Hz: a pluck must sit below sr / 2 = {sr / 2} Hz.")
    period = int(round(sr / freq + 0.5))
    if not 0 < decay <= 1:
        raise ValueError(f"decay={decay} must be in (0, 1].")
    buf = (torch.rand(period, generator=generator, dtype=torch.float64) * 2 - 1).tolist()
    out = [0.0] * n
    for i in range(n):
        j = i % period
        out[i] = buf[j]
        buf[j] = decay * 0.5 * (buf[j] + buf[(j + 1) % period])
    x = torch.tensor(out, dtype=torch.float64)
    x = x - x.mean()
    return (amp * x / x.abs().max()).float()
