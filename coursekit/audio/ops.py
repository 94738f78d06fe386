"""Basic operations on signals: resampling, mono, levels (peak, RMS), lengths, mu-law companding and dB.

Lesson: lessons/01_audio_representations.ipynb
"""

from __future__ import annotations

import functools
import math

import torch
import torchaudio.transforms as AT

from coursekit.audio.validate import (
    check_int,
    check_signal,
    check_sr,
)


# ----------------------------------------------------------------------------- basic operations
def resample(x: torch.Tensor, orig_sr: int, target_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's windowed sinc).

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
    orig_sr, target_sr = check_sr(orig_sr, "orig_sr"), check_sr(target_sr, "target_sr")
    if orig_sr == target_sr:
        return x
    return _resampler(orig_sr, target_sr, x.device, x.dtype)(x)


@functools.lru_cache(maxsize=16)
def _resampler(orig_sr: int, target_sr: int, device: torch.device, dtype: torch.dtype) -> AT.Resample:
    """One resampling kernel per rate pair, built once (building it costs far more than applying it)."""
    return AT.Resample(orig_sr, target_sr).to(device=device, dtype=dtype)


def to_mono(x: torch.Tensor) -> torch.Tensor:
    """Average channels: ``[channels, samples] -> [1, samples]`` (also for ``[batch, ...]``).

    A ``[samples]`` signal is already mono and comes back as ``[1, samples]``.
    """
    check_signal(x)
    if x.dim() == 1:
        return x.unsqueeze(0)
    return x.mean(dim=-2, keepdim=True)


def peak_normalize(x: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Scale so that ``max |x| == peak`` along the last axis (per channel). Silence is returned unchanged.

    Args:
        x: Tensor ``[..., samples]``.
        peak: the target peak, a positive amplitude (1.0 is full scale).

    Raises:
        ValueError: ``peak`` is not positive and finite (a negative one would flip the polarity).

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
    peaks = torch.as_tensor(peak)
    if not bool((peaks > 0).all() and torch.isfinite(peaks).all()):
        raise ValueError(
            f"peak={peak}: the target peak must be a positive finite number, e.g. 1.0 or 0.9 "
            "(to flip the polarity, negate the result: -peak_normalize(x))."
        )
    current = x.abs().amax(dim=-1, keepdim=True)
    return torch.where(current > 0, x * (peak / current.clamp_min(1e-12)), x)


def rms_db(x: torch.Tensor) -> torch.Tensor:
    """Root-mean-square level in dB relative to full scale (a full-scale sine reads -3.01 dB)."""
    check_signal(x)
    return 20 * torch.log10(x.pow(2).mean(dim=-1).sqrt().clamp_min(1e-10))


def rms_normalize(x: torch.Tensor, target_db: float = -20.0) -> torch.Tensor:
    """Scale to an RMS level of ``target_db`` dBFS. Silence is returned unchanged.

    The result may exceed [-1, 1] for peaky signals; follow with :func:`peak_normalize` if so.
    """
    gain = 10 ** ((target_db - rms_db(x)) / 20)
    silent = x.abs().amax(dim=-1) == 0
    return x * torch.where(silent, torch.ones_like(gain), gain).unsqueeze(-1)


def trim_or_pad(x: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Cut the end off, or pad zeros at the end, so that the last axis has ``n_samples``.

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
    if n_samples <= 0:
        raise ValueError(f"n_samples={n_samples}: the target length must be positive.")
    if x.shape[-1] >= n_samples:
        return x[..., :n_samples]
    return torch.nn.functional.pad(x, (0, n_samples - x.shape[-1]))


def random_crop(x: torch.Tensor, n_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A window of ``n_samples`` at a uniformly random start (zero-padded if ``x`` is shorter).

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    check_signal(x)
    if n_samples <= 0:
        raise ValueError(f"n_samples={n_samples}: the crop length must be positive.")
    if x.shape[-1] <= n_samples:
        return trim_or_pad(x, n_samples)
    start = int(torch.randint(0, x.shape[-1] - n_samples + 1, (1,), generator=generator))
    return x[..., start : start + n_samples]


# ----------------------------------------------------------------------------- companding and dB
MU_LAW_TOLERANCE = 1e-6  # how far past +-1 mu_law_encode accepts (and clamps) as float rounding


def mu_law_encode(x: torch.Tensor, mu: int = 255, quantize: bool = True) -> torch.Tensor:
    """Mu-law companding of a waveform in [-1, 1].

    ``y = sign(x) * ln(1 + mu |x|) / ln(1 + mu)``. With ``quantize`` the result is an int64
    class index in ``[0, mu]`` (as WaveNet uses, 256 classes for mu = 255), else floats in [-1, 1].

    Args:
        x: Tensor ``[..., samples]`` in [-1, 1].
        mu: a positive int; ``mu + 1`` classes.
        quantize: return class indices (int64) rather than floats.

    Raises:
        ValueError: ``x`` peaks above 1 (beyond float rounding, ``MU_LAW_TOLERANCE``): the values
            would be clipped, so normalise first with :func:`peak_normalize`; or ``mu`` is not an int >= 1.

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
    mu = check_int(mu, "mu", "the largest class; mu + 1 classes", "pass e.g. mu=255 (256 classes, as WaveNet)")
    peak = float(x.abs().max())
    if peak > 1.0 + MU_LAW_TOLERANCE:
        raise ValueError(
            f"x peaks at {peak:.3f} > 1.0: mu_law_encode expects [-1, 1] and would clip it. "
            "Call coursekit.audio.peak_normalize(x) first."
        )
    y = torch.sign(x) * torch.log1p(mu * x.abs().clamp(max=1.0)) / math.log1p(mu)
    if not quantize:
        return y
    return ((y + 1) / 2 * mu + 0.5).floor().long().clamp(0, mu)


def mu_law_decode(y: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Inverse of :func:`mu_law_encode`: int classes ``[0, mu]`` or floats in [-1, 1] to a waveform.

    Args:
        y: Tensor of int class indices in ``[0, mu]``, or of floats in [-1, 1] (any shape).
        mu: the ``mu`` that encoded ``y``, a positive int.

    Returns:
        A float waveform of ``y``'s shape, in [-1, 1].

    Raises:
        ValueError: ``mu`` is not an int >= 1, or int classes fall outside ``[0, mu]`` (a different ``mu``
            encoded them).
    """
    mu = check_int(mu, "mu", "the largest class; mu + 1 classes", "pass the mu used to encode, e.g. mu=255")
    if not y.is_floating_point():
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > mu):
            raise ValueError(
                f"y holds classes from {int(y.min())} to {int(y.max())}, outside [0, mu] = [0, {mu}]: "
                f"decode with the mu used to encode (mu_law_encode(x, mu) gives classes 0 to mu)."
            )
        y = y.float() / mu * 2 - 1
    return torch.sign(y) * ((1 + mu) ** y.abs() - 1) / mu


def mu_law_compress(mag: torch.Tensor, mu: float = 8.0) -> torch.Tensor:
    """Mu-law on non-negative magnitudes in [0, 1]: ``ln(1 + mu m) / ln(1 + mu)``.

    A small ``mu`` (such as 8) lifts quiet parts of a spectrogram without a full log.

    Lesson: lessons/01_audio_representations.ipynb
    """
    if (mag < 0).any():
        raise ValueError("mag has negative values: mu_law_compress expects magnitudes (use .abs()).")
    return torch.log1p(mu * mag) / math.log1p(mu)


def mu_law_expand(y: torch.Tensor, mu: float = 8.0) -> torch.Tensor:
    """Inverse of :func:`mu_law_compress`."""
    return torch.expm1(y * math.log1p(mu)) / mu


def amplitude_to_db(mag: torch.Tensor, floor_db: float | None = -70.0, ref: float | None = None) -> torch.Tensor:
    """``20 log10(mag / ref)`` in dB, with everything below ``floor_db`` raised to it.

    Args:
        mag: non-negative magnitudes, any shape.
        floor_db: the floor in dB relative to ``ref`` (e.g. -70); ``None`` for no floor.
        ref: the 0 dB reference; ``None`` uses ``mag.max()`` (so the loudest bin reads 0 dB).

    Matches ``librosa.amplitude_to_db(mag, ref=np.max, top_db=-floor_db)``.

    Returns:
        Tensor of ``mag``'s shape, in dB.

    Raises:
        ValueError: negative magnitudes; a ``ref`` that is not positive; or ``floor_db >= 0`` with
            ``ref=None``, which would flatten the output to ``floor_db`` (the floor is negative: -70,
            where librosa's ``top_db`` is 70).

    Lesson: lessons/01_audio_representations.ipynb
    """
    if (mag < 0).any():
        raise ValueError("mag has negative values: amplitude_to_db expects magnitudes (use .abs()).")
    if ref is not None and not (math.isfinite(ref) and ref > 0):
        raise ValueError(
            f"ref={ref}: the 0 dB reference must be a positive magnitude, e.g. 1.0, or None for the loudest bin of mag."
        )
    if ref is None and floor_db is not None and floor_db >= 0:
        suggestion = -floor_db if floor_db > 0 else -70.0
        raise ValueError(
            f"floor_db={floor_db}: with ref=None the loudest bin reads 0 dB, so a floor at or above 0 dB "
            f"turns every bin into {floor_db}. The floor is below the loudest bin: did you mean "
            f"floor_db={suggestion} (librosa's top_db={-suggestion})?"
        )
    ref_value = float(mag.max()) if ref is None else ref
    db = 20 * torch.log10(mag.clamp_min(1e-10)) - 20 * math.log10(max(ref_value, 1e-10))
    return db if floor_db is None else db.clamp_min(floor_db)


def db_to_amplitude(db: torch.Tensor, ref: float = 1.0) -> torch.Tensor:
    """Inverse of :func:`amplitude_to_db` (the floor is not undone)."""
    return ref * 10 ** (db / 20)
