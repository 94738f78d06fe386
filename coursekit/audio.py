"""Audio in, audio out, and the representations between: waveform, STFT, mel, mu-law, dB.

Conventions: a signal ``x`` is a float32 ``torch.Tensor`` shaped ``[samples]``,
``[channels, samples]`` or ``[batch, channels, samples]`` with values in [-1, 1];
``sr`` is its sample rate in Hz. Files are read and written with soundfile (librosa is the
fallback for formats soundfile cannot read). Transforms come from torch, torchaudio and
librosa; the few written here for teaching are checked against them in ``tests/test_audio.py``.

Lesson: lessons/01_audio_representations.ipynb
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT
from IPython.display import Audio

from coursekit.files import atomic_write

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


# ----------------------------------------------------------------------------- checks
def check_signal(x: torch.Tensor, name: str = "x", min_rank: int = 1, max_rank: int = 3) -> None:
    """Raise a clear error unless ``x`` is a finite floating tensor of an allowed rank.

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


def _check_window(x: torch.Tensor, n_fft: int, name: str = "x") -> None:
    if n_fft > x.shape[-1]:
        raise ValueError(
            f"{name} has {x.shape[-1]} samples but the window is n_fft={n_fft}: "
            f"use a smaller n_fft or pad {name} (coursekit.audio.trim_or_pad)."
        )


# ----------------------------------------------------------------------------- files
def load(path: str | Path, sr: int | None = None, mono: bool = True) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 in [-1, 1].

    Args:
        path: a wav/flac/ogg/aiff file (soundfile), or mp3 and others (librosa fallback).
        sr: resample to this rate in Hz; ``None`` keeps the file's rate.
        mono: average the channels to one.

    Returns:
        ``(x, sr)`` with ``x`` a Tensor ``[channels, samples]`` (``channels == 1`` when ``mono``).

    Example:
        >>> x, sr = load("note.wav", sr=16000)   # x.shape == (1, n_samples)

    Lesson: lessons/01_audio_representations.ipynb
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}. Check the path (relative to {Path.cwd()}).")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; pass one audio file (or use coursekit.data.folder).")
    if path.stat().st_size == 0:
        raise ValueError(f"audio file {path} is empty (0 bytes): re-export or re-copy it.")
    data, file_sr = _read(path)
    if data.size == 0:
        raise ValueError(f"audio file {path} holds no samples: re-export it.")
    x = torch.from_numpy(np.ascontiguousarray(data.T, dtype=np.float32))
    check_signal(x, name=str(path))
    if mono:
        x = to_mono(x)
    if sr is not None and check_sr(sr) != file_sr:
        x = resample(x, file_sr, sr)
    return x, int(sr or file_sr)


def _read(path: Path) -> tuple[np.ndarray, int]:
    """Return ``(data [samples, channels] float, sr)``, via soundfile then librosa."""
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data, int(file_sr)
    except (sf.LibsndfileError, RuntimeError) as sf_err:
        first_error = sf_err
    try:
        import librosa

        data, file_sr = librosa.load(str(path), sr=None, mono=False)
    except Exception as lr_err:  # librosa raises many types for unreadable files
        raise ValueError(
            f"could not read audio file {path}: it is corrupt or in a format neither soundfile "
            f"nor librosa can decode ({first_error}; {lr_err}). Convert it to wav, e.g. "
            f"`ffmpeg -i {path.name} out.wav`."
        ) from lr_err
    return np.atleast_2d(data).T, int(file_sr)


def save(path: str | Path, x: torch.Tensor, sr: int, subtype: str = "PCM_16") -> Path:
    """Write ``x`` to an audio file atomically (a temporary file renamed when complete).

    Args:
        path: destination; the format follows the suffix (.wav, .flac, .ogg).
        x: Tensor ``[samples]`` or ``[channels, samples]`` in [-1, 1].
        sr: sample rate in Hz.
        subtype: soundfile subtype, ``PCM_16`` (default) or ``FLOAT``.

    Raises:
        ValueError: if the peak exceeds 1 with an integer subtype (it would clip).

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x, max_rank=2)
    sr = check_sr(sr)
    path = Path(path)
    peak = float(x.abs().max())
    if peak > 1.0 and subtype.startswith("PCM"):
        raise ValueError(
            f"x peaks at {peak:.3f} > 1.0 and would clip in {subtype}: "
            "call coursekit.audio.peak_normalize(x) first, or save with subtype='FLOAT'."
        )
    data = x.detach().cpu().numpy()
    data = data.T if data.ndim == 2 else data
    fmt = path.suffix.lstrip(".").upper() or None
    return atomic_write(path, lambda file: sf.write(file, data, sr, subtype=subtype, format=fmt), suffix=path.suffix)


def play(x: torch.Tensor, sr: int) -> Audio:
    """An audio player for a notebook, at the signal's true loudness when it fits in [-1, 1].

    Louder signals are scaled down to fit (the player would otherwise refuse them).
    Browsers play sample rates from 3,000 Hz up; lower rates raise an error.

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x, max_rank=2)
    sr = check_sr(sr)
    if sr < 3000:
        raise ValueError(
            f"sr={sr} Hz: browsers refuse to play audio below 3,000 Hz. "
            "Resample first: coursekit.audio.resample(x, sr, 16000)."
        )
    data = x.detach().cpu().double().numpy()
    return Audio(data, rate=sr, normalize=bool(np.abs(data).max() > 1.0))


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
    """Scale so that ``max |x| == peak``. Silence is returned unchanged.

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
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
def mu_law_encode(x: torch.Tensor, mu: int = 255, quantize: bool = True) -> torch.Tensor:
    """Mu-law companding of a waveform in [-1, 1].

    ``y = sign(x) * ln(1 + mu |x|) / ln(1 + mu)``. With ``quantize`` the result is an int64
    class index in ``[0, mu]`` (as WaveNet uses, 256 classes for mu = 255), else floats in [-1, 1].

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
    y = torch.sign(x) * torch.log1p(mu * x.abs().clamp(max=1.0)) / math.log1p(mu)
    if not quantize:
        return y
    return ((y + 1) / 2 * mu + 0.5).floor().long().clamp(0, mu)


def mu_law_decode(y: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Inverse of :func:`mu_law_encode`: int classes ``[0, mu]`` or floats in [-1, 1] to a waveform."""
    if not y.is_floating_point():
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

    Lesson: lessons/01_audio_representations.ipynb
    """
    if (mag < 0).any():
        raise ValueError("mag has negative values: amplitude_to_db expects magnitudes (use .abs()).")
    ref_value = float(mag.max()) if ref is None else ref
    db = 20 * torch.log10(mag.clamp_min(1e-10)) - 20 * math.log10(max(ref_value, 1e-10))
    return db if floor_db is None else db.clamp_min(floor_db)


def db_to_amplitude(db: torch.Tensor, ref: float = 1.0) -> torch.Tensor:
    """Inverse of :func:`amplitude_to_db` (the floor is not undone)."""
    return ref * 10 ** (db / 20)


# ----------------------------------------------------------------------------- spectrograms
def stft(x: torch.Tensor, n_fft: int = 1024, hop_length: int | None = None) -> torch.Tensor:
    """Short-time Fourier transform with a Hann window, frames centred (as librosa).

    Args:
        x: Tensor ``[..., samples]``.
        n_fft: window and FFT length in samples.
        hop_length: step between frames in samples; default ``n_fft // 4``.

    Returns:
        Complex Tensor ``[..., n_fft // 2 + 1, frames]`` with ``frames = 1 + samples // hop_length``.

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
    _check_window(x, n_fft)
    hop_length = hop_length or n_fft // 4
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    flat = x.reshape(-1, x.shape[-1])
    spec = torch.stft(flat, n_fft, hop_length, window=window, center=True, pad_mode="constant", return_complex=True)
    return spec.reshape(*x.shape[:-1], *spec.shape[-2:])


def istft(
    spec: torch.Tensor, n_fft: int = 1024, hop_length: int | None = None, length: int | None = None
) -> torch.Tensor:
    """Inverse of :func:`stft`: complex ``[..., freqs, frames]`` to a signal ``[..., samples]``."""
    hop_length = hop_length or n_fft // 4
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

    Returns:
        Tensor ``[..., n_mels, frames]`` of power (squared magnitude) per mel band.

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
    sr = check_sr(sr)
    _check_window(x, n_fft)
    transform = AT.MelSpectrogram(
        sample_rate=sr,
        n_fft=n_fft,
        hop_length=hop_length or n_fft // 4,
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
        n_iter: iterations; 0 returns the signal with the random starting phase.
        length: output length in samples.
        momentum: 0.99 is the "fast Griffin-Lim" of Perraudin et al.; 0 is the original.
        seed: seeds the random initial phase; ``None`` uses the global generator.

    Returns:
        Tensor ``[..., samples]``.

    Lesson: lessons/01_audio_representations.ipynb
    """
    if n_iter < 0:
        raise ValueError(f"n_iter={n_iter} must be >= 0.")
    hop_length = hop_length or n_fft // 4
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
    x: torch.Tensor, y: torch.Tensor, n_fft: int = 1024, hop_length: int | None = None, eps: float = 1e-3
) -> torch.Tensor:
    """``|| log(|STFT(x)| + eps) - log(|STFT(y)| + eps) ||_1``, averaged over bins and frames.

    It compares magnitudes only, so it ignores phase: a copy of ``x`` with shifted phases is
    close to ``x`` even though their samples differ. Differentiable; a scalar tensor.

    Args:
        x, y: Tensors of the same shape ``[..., samples]``.
        n_fft, hop_length: as in :func:`stft`.
        eps: the magnitude treated as silence. A full-scale sine peaks at ``n_fft / 4`` in this
            (unnormalised) STFT, so 1e-3 sits about 100 dB below it; far smaller values let
            float32 rounding noise in silent bins dominate the distance.

    Lesson: lessons/01_audio_representations.ipynb
    """
    if x.shape != y.shape:
        raise ValueError(f"x has shape {list(x.shape)} but y has {list(y.shape)}: they must match.")
    mag_x, mag_y = stft(x, n_fft, hop_length).abs(), stft(y, n_fft, hop_length).abs()
    return (torch.log(mag_x + eps) - torch.log(mag_y + eps)).abs().mean()


def multi_resolution_spectral_distance(
    x: torch.Tensor, y: torch.Tensor, n_ffts: tuple[int, ...] = (2048, 1024, 512, 256, 128), eps: float = 1e-3
) -> torch.Tensor:
    """Mean of :func:`spectral_distance` over several window sizes (hop = n_fft // 4).

    Long windows resolve pitch, short ones resolve timing; together neither is ignored.

    Lesson: lessons/01_audio_representations.ipynb
    """
    if not n_ffts:
        raise ValueError("n_ffts is empty: give at least one window size.")
    return torch.stack([spectral_distance(x, y, n, n // 4, eps) for n in n_ffts]).mean()
