"""Spectrograms and back: STFT and its inverse, mel, Griffin-Lim, and the spectral distance between sounds.

Lesson: lessons/01_audio_representations.ipynb
"""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT

from coursekit.audio.ops import trim_or_pad
from coursekit.audio.validate import (
    check_bins,
    check_frames,
    check_int,
    check_length,
    check_signal,
    check_sr,
    check_window,
)


# ----------------------------------------------------------------------------- spectrograms
def stft(x: torch.Tensor, n_fft: int = 1024, hop_length: int | None = None, pad_mode: str = "constant") -> torch.Tensor:
    """Short-time Fourier transform with a Hann window, frames centred (as librosa).

    Args:
        x: Tensor ``[..., samples]``.
        n_fft: window and FFT length in samples, an int >= 1 (>= 4 with the default hop).
        hop_length: step between frames in samples, an int >= 1; default (``None``) ``n_fft // 4``.
        pad_mode: how the first and last frames see past the ends: ``"constant"`` pads ``n_fft // 2``
            zeros (a clip that starts loud starts with a step, which the edge frames hear as a click);
            ``"reflect"`` mirrors the signal there (lesson 03 compares the two in a loss).

    Returns:
        Complex Tensor ``[..., n_fft // 2 + 1, frames]`` with ``frames = 1 + samples // hop_length``.

    Raises:
        ValueError: ``n_fft`` or ``hop_length`` is not a positive int, ``n_fft`` exceeds the signal, or
            ``pad_mode`` is neither ``"constant"`` nor ``"reflect"``.

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
    n_fft, hop_length = check_frames(n_fft, hop_length)
    check_window(x, n_fft)
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(f"pad_mode={pad_mode!r}: use 'constant' (zeros past the ends) or 'reflect' (mirrored).")
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    flat = x.reshape(-1, x.shape[-1])
    spec = torch.stft(flat, n_fft, hop_length, window=window, center=True, pad_mode=pad_mode, return_complex=True)
    return spec.reshape(*x.shape[:-1], *spec.shape[-2:])


def istft(
    spec: torch.Tensor, n_fft: int = 1024, hop_length: int | None = None, length: int | None = None
) -> torch.Tensor:
    """Inverse of :func:`stft`: complex ``[..., n_fft // 2 + 1, frames]`` to a signal ``[..., samples]``.

    Args:
        spec: complex Tensor ``[..., n_fft // 2 + 1, frames]`` from :func:`stft`.
        n_fft, hop_length: those ``spec`` was made with (samples; default hop ``n_fft // 4``).
        length: output samples (the original signal's length); ``None`` for what the frames cover.

    Raises:
        ValueError: ``n_fft``, ``hop_length`` or ``length`` is not a positive int, or ``spec`` has
            a number of frequency bins that another ``n_fft`` made (the message names it).
    """
    n_fft, hop_length = check_frames(n_fft, hop_length)
    check_bins(spec, n_fft, "spec")
    length = check_length(length)
    window = torch.hann_window(n_fft, device=spec.device, dtype=spec.real.dtype)
    flat = spec.reshape(-1, *spec.shape[-2:])
    x = torch.istft(flat, n_fft, hop_length, window=window, center=True, length=length)
    return x.reshape(*spec.shape[:-2], x.shape[-1])


def magphase(spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a complex spectrogram into magnitude (>= 0) and phase (radians in (-pi, pi])."""
    return spec.abs(), spec.angle()


def hz_to_mel(f: torch.Tensor | float) -> torch.Tensor:
    """Hz to mel on the HTK scale, ``2595 log10(1 + f / 700)`` (librosa's ``htk=True``)."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: torch.Tensor | float) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10 ** (torch.as_tensor(m, dtype=torch.float64) / 2595.0) - 1.0)


def melspectrogram(
    x: torch.Tensor, sr: int, n_fft: int = 1024, hop_length: int | None = None, n_mels: int = 64
) -> torch.Tensor:
    """Power mel spectrogram (torchaudio, HTK mel scale, no normalisation).

    Args:
        x: Tensor ``[..., samples]``.
        sr: sample rate in Hz.
        n_fft, hop_length: as in :func:`stft` (samples; default hop ``n_fft // 4``).
        n_mels: mel bands, an int >= 1.

    Returns:
        Tensor ``[..., n_mels, frames]`` of power (squared magnitude) per mel band.

    Raises:
        ValueError: an invalid ``sr``, ``n_fft``, ``hop_length`` or ``n_mels``, or ``n_fft`` exceeds the signal.

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
    sr = check_sr(sr)
    n_fft, hop_length = check_frames(n_fft, hop_length)
    n_mels = check_int(n_mels, "n_mels", "mel bands", "pass e.g. 64 (the default) or 128")
    check_window(x, n_fft)
    transform = AT.MelSpectrogram(
        sample_rate=sr,
        n_fft=n_fft,
        hop_length=hop_length,
        n_mels=n_mels,
        f_min=0.0,
        f_max=sr / 2,
        power=2.0,
        center=True,
        pad_mode="constant",
        mel_scale="htk",
    ).to(x.device)
    return transform(x)


def griffin_lim(
    mag: torch.Tensor,
    n_fft: int = 1024,
    hop_length: int | None = None,
    n_iter: int = 32,
    length: int | None = None,
    momentum: float = 0.99,
    seed: int | None = 0,
) -> torch.Tensor:
    """Estimate a signal from an STFT magnitude alone (torchaudio's fast Griffin-Lim).

    Args:
        mag: magnitudes ``[..., n_fft // 2 + 1, frames]`` as returned by ``stft(...).abs()``.
        n_fft, hop_length: those ``mag`` was made with (samples; default hop ``n_fft // 4``).
        n_iter: iterations; 0 returns the signal with the random starting phase.
        length: output length in samples.
        momentum: 0.99 is the "fast Griffin-Lim" of Perraudin et al.; 0 is the original.
        seed: seeds the random initial phase; ``None`` uses the global generator.

    Returns:
        Tensor ``[..., samples]``.

    Raises:
        ValueError: ``mag`` is complex or negative; ``n_iter < 0``; ``n_fft``, ``hop_length`` or
            ``length`` is not a positive int; or ``mag``'s frequency bins come from another ``n_fft``.

    Lesson: lessons/01_audio_representations.ipynb
    """
    if n_iter < 0:
        raise ValueError(f"n_iter={n_iter} must be >= 0.")
    if mag.is_complex():
        raise ValueError(
            "mag is complex: griffin_lim takes magnitudes, spec.abs(), and estimates the phase "
            "(with the phase at hand, istft(spec) inverts exactly)."
        )
    if (mag < 0).any():
        raise ValueError("mag has negative values: griffin_lim expects magnitudes (use .abs()).")
    n_fft, hop_length = check_frames(n_fft, hop_length)
    check_bins(mag, n_fft, "mag")
    length = check_length(length)
    window = torch.hann_window(n_fft, device=mag.device)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if n_iter == 0:
            phase = torch.exp(2j * math.pi * torch.rand(mag.shape, device=mag.device))
            return istft(mag * phase, n_fft, hop_length, length)
        x = AF.griffinlim(mag, window, n_fft, hop_length, n_fft, 1.0, n_iter, momentum, None, True)
    return x if length is None else trim_or_pad(x, length)


# ----------------------------------------------------------------------------- spectral distance
def spectral_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    n_fft: int = 1024,
    hop_length: int | None = None,
    eps: float = 1e-3,
    pad_mode: str = "constant",
) -> torch.Tensor:
    """``|| log(|STFT(x)| + eps) - log(|STFT(y)| + eps) ||_1``, averaged over bins and frames.

    It compares magnitudes only, so it ignores phase: a copy of ``x`` with shifted phases is
    close to ``x`` even though their samples differ. Differentiable; a scalar tensor.

    Args:
        x, y: Tensors of the same shape ``[..., samples]``.
        n_fft, hop_length, pad_mode: as in :func:`stft`.
        eps: the magnitude treated as silence. A full-scale sine peaks at ``n_fft / 4`` in this
            (unnormalised) STFT, so 1e-3 sits about 100 dB below it; far smaller values let
            float32 rounding noise in silent bins dominate the distance.

    Raises:
        ValueError: the shapes differ, ``eps`` is not positive, or as :func:`stft` for ``n_fft``, ``hop_length``.

    Lesson: lessons/01_audio_representations.ipynb
    """
    if x.shape != y.shape:
        raise ValueError(f"x has shape {list(x.shape)} but y has {list(y.shape)}: they must match.")
    if not eps > 0:
        raise ValueError(
            f"eps={eps}: the magnitude treated as silence must be positive (log(0) is -inf): "
            "pass e.g. eps=1e-3, the default."
        )
    mag_x, mag_y = stft(x, n_fft, hop_length, pad_mode).abs(), stft(y, n_fft, hop_length, pad_mode).abs()
    return (torch.log(mag_x + eps) - torch.log(mag_y + eps)).abs().mean()


def multi_resolution_spectral_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    n_ffts: tuple[int, ...] = (2048, 1024, 512, 256, 128),
    eps: float = 1e-3,
    pad_mode: str = "constant",
) -> torch.Tensor:
    """Mean of :func:`spectral_distance` over several window sizes (hop = n_fft // 4; ``pad_mode`` as in :func:`stft`).

    Long windows resolve pitch, short ones resolve timing; together neither is ignored.

    Lesson: lessons/01_audio_representations.ipynb
    """
    if not n_ffts:
        raise ValueError("n_ffts is empty: give at least one window size.")
    return torch.stack([spectral_distance(x, y, n, None, eps, pad_mode) for n in n_ffts]).mean()


def multi_resolution_spectral_convergence(
    x: torch.Tensor, y: torch.Tensor, n_ffts: tuple[int, ...] = (2048, 1024, 512, 256, 128), pad_mode: str = "constant"
) -> torch.Tensor:
    """Mean over window sizes of ``|| |STFT(x)| - |STFT(y)| ||_F / || |STFT(y)| ||_F`` (``y`` the reference).

    The linear-magnitude companion of :func:`multi_resolution_spectral_distance` (auraloss calls it
    spectral convergence). On a log scale a partial 60 dB down counts as much as the fundamental;
    on a linear scale the loud bins dominate, so this term is what makes a model get the strong
    partials, and with them pitch and level, right. Differentiable; a scalar tensor. ``pad_mode`` as in :func:`stft`.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    if x.shape != y.shape:
        raise ValueError(f"x has shape {list(x.shape)} but y has {list(y.shape)}: they must match.")
    if not n_ffts:
        raise ValueError("n_ffts is empty: give at least one window size.")
    terms = []
    for n in n_ffts:
        mag_x, mag_y = stft(x, n, pad_mode=pad_mode).abs(), stft(y, n, pad_mode=pad_mode).abs()
        terms.append(torch.linalg.vector_norm(mag_x - mag_y) / torch.linalg.vector_norm(mag_y).clamp_min(1e-8))
    return torch.stack(terms).mean()
