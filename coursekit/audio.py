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
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
import torchaudio.transforms as AT
from IPython.display import Audio

from coursekit.files import atomic_write

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
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


def _check_int(value: int, name: str, meaning: str, fix: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise naming ``name`` and ``fix`` unless it is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an int >= {minimum} ({meaning}): {fix}.")
    return int(value)


def _check_frames(n_fft: int, hop_length: int | None) -> tuple[int, int]:
    """Return ``(n_fft, hop_length)`` as ints, with the default hop ``n_fft // 4``; raise on invalid sizes."""
    n_fft = _check_int(n_fft, "n_fft", "window length in samples", "pass e.g. n_fft=1024 or 512")
    if hop_length is None:
        if n_fft < 4:
            raise ValueError(
                f"n_fft={n_fft} is too small for the default hop_length (n_fft // 4 = 0): "
                "use n_fft >= 4, or pass hop_length explicitly."
            )
        return n_fft, n_fft // 4
    fix = f"pass e.g. {max(n_fft // 4, 1)} (n_fft // 4, the default), or None for that default"
    return n_fft, _check_int(hop_length, "hop_length", "samples between frames", fix)


def _check_length(length: int | None) -> int | None:
    if length is None:
        return None
    return _check_int(length, "length", "output samples", "pass the original signal's length, x.shape[-1], or None")


def _check_bins(spec: torch.Tensor, n_fft: int, name: str) -> None:
    """Raise unless ``spec`` is ``[..., n_fft // 2 + 1, frames]``, naming the n_fft it came from."""
    if spec.dim() < 2:
        raise ValueError(f"{name} has shape {list(spec.shape)}: expected [..., n_fft // 2 + 1 frequencies, frames].")
    bins = spec.shape[-2]
    if bins != n_fft // 2 + 1:
        raise ValueError(
            f"{name} has {bins} frequency bins, which is n_fft={2 * (bins - 1)}, but n_fft={n_fft} was given "
            f"({n_fft // 2 + 1} bins): pass n_fft={2 * (bins - 1)}, the n_fft of the stft that made {name}."
        )


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

    Raises:
        FileNotFoundError: no file at ``path``. IsADirectoryError: ``path`` is a folder.
        ValueError: the file is empty, unreadable, holds NaN or inf samples, or is truncated: its
            header declares more frames than it holds (a WAV or AIFF cut short by an interrupted copy,
            download or export; see :func:`declared_frames`). Each message names the file and the fix.

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
    reason = describe_truncation(path, data.shape[0])
    if reason is not None:
        raise ValueError(f"audio file {path} is truncated: {reason}")
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


# WAVE format tags and AIFC compression types whose header counts frames (one per block): PCM, float, A-/mu-law
_FRAME_WAVE_FORMATS = (0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE)
_FRAME_AIFC_TYPES = (b"NONE", b"sowt", b"twos", b"raw ", b"in24", b"in32", b"fl32", b"FL32", b"fl64", b"FL64")
_FRAME_AIFC_TYPES += (b"ulaw", b"ULAW", b"alaw", b"ALAW")


def declared_frames(path: str | Path) -> int | None:
    """The number of frames a WAV or AIFF file's header declares, read without decoding any samples.

    A file cut short (an interrupted copy, download or export) keeps its header, so it declares
    more frames than it holds, and soundfile reads only those present without a word. ``None``
    where the header does not say: other formats (a cut FLAC or Ogg file fails to decode instead),
    compressed WAV or AIFC (whose headers count bytes or packets), and WAVs written to a stream,
    whose header leaves the size unset (0 or 0xFFFFFFFF).

    Lesson: lessons/00_tour.ipynb
    """
    try:
        with open(path, "rb") as file:
            head = file.read(12)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                return _wav_declared_frames(file)
            if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                return _aiff_declared_frames(file, compressed_form=head[8:12] == b"AIFC")
    except OSError:
        return None
    return None


def _wav_declared_frames(file) -> int | None:
    """Frames declared by the ``data`` chunk (bytes / block align), from just after the RIFF header."""
    format_tag = block_align = None
    while len(header := file.read(8)) == 8:
        chunk, size = header[:4], int.from_bytes(header[4:], "little")
        if chunk == b"data":
            if format_tag not in _FRAME_WAVE_FORMATS or not block_align or size in (0, 0xFFFFFFFF):
                return None
            return size // block_align
        if chunk == b"fmt ":
            fmt = file.read(size + size % 2)
            if len(fmt) >= 14:
                format_tag, block_align = int.from_bytes(fmt[0:2], "little"), int.from_bytes(fmt[12:14], "little")
        else:
            file.seek(size + size % 2, os.SEEK_CUR)
    return None


def _aiff_declared_frames(file, compressed_form: bool) -> int | None:
    """``numSampleFrames`` of the ``COMM`` chunk, from just after the FORM header."""
    while len(header := file.read(8)) == 8:
        chunk, size = header[:4], int.from_bytes(header[4:], "big")
        if chunk == b"COMM":
            comm = file.read(size)
            if len(comm) < 6 or (compressed_form and comm[18:22] not in _FRAME_AIFC_TYPES):
                return None
            return int.from_bytes(comm[2:6], "big")
        file.seek(size + size % 2, os.SEEK_CUR)
    return None


def describe_truncation(path: str | Path, n_frames: int) -> str | None:
    """Why ``path`` is truncated when it holds ``n_frames`` frames, or ``None`` when it is not.

    A file is truncated when its header declares more frames than ``n_frames`` (see
    :func:`declared_frames`). The reason says both counts and the fix; :func:`load` raises it and
    :class:`coursekit.data.folder.AudioFolder` skips such files with it as a warning.

    Lesson: lessons/00_tour.ipynb
    """
    declared = declared_frames(path)
    if declared is None or n_frames >= declared:
        return None
    percent = min(round(100 * n_frames / declared), 99)
    return (
        f"its header declares {declared} frames but the file holds only {n_frames} ({percent}%). "
        "It was cut short (an interrupted copy, download or export): re-copy it from the original, or re-export it."
    )


def save(path: str | Path, x: torch.Tensor, sr: int, subtype: str = "PCM_16") -> Path:
    """Write ``x`` to an audio file atomically (a temporary file renamed when complete).

    Args:
        path: destination; the format follows the suffix (.wav, .flac, .ogg).
        x: Tensor ``[samples]`` or ``[channels, samples]`` in [-1, 1].
        sr: sample rate in Hz.
        subtype: soundfile subtype, ``PCM_16`` (default) or ``FLOAT``.

    Raises:
        ValueError: if the peak exceeds 1 with an integer subtype (it would clip), or ``x`` is not a
            valid signal (see :func:`check_signal`; a ``[samples, channels]`` array is caught there).

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

    Args:
        x: Tensor ``[samples]`` or ``[channels, samples]``.
        sr: sample rate in Hz.

    Raises:
        ValueError: ``sr`` below 3,000 Hz, or ``x`` is not a valid signal (see :func:`check_signal`).

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
    mu = _check_int(mu, "mu", "the largest class; mu + 1 classes", "pass e.g. mu=255 (256 classes, as WaveNet)")
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
    mu = _check_int(mu, "mu", "the largest class; mu + 1 classes", "pass the mu used to encode, e.g. mu=255")
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


# ----------------------------------------------------------------------------- spectrograms
def stft(x: torch.Tensor, n_fft: int = 1024, hop_length: int | None = None) -> torch.Tensor:
    """Short-time Fourier transform with a Hann window, frames centred (as librosa).

    Args:
        x: Tensor ``[..., samples]``.
        n_fft: window and FFT length in samples, an int >= 1 (>= 4 with the default hop).
        hop_length: step between frames in samples, an int >= 1; default (``None``) ``n_fft // 4``.

    Returns:
        Complex Tensor ``[..., n_fft // 2 + 1, frames]`` with ``frames = 1 + samples // hop_length``.

    Raises:
        ValueError: ``n_fft`` or ``hop_length`` is not a positive int, or ``n_fft`` exceeds the signal.

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(x)
    n_fft, hop_length = _check_frames(n_fft, hop_length)
    _check_window(x, n_fft)
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    flat = x.reshape(-1, x.shape[-1])
    spec = torch.stft(flat, n_fft, hop_length, window=window, center=True, pad_mode="constant", return_complex=True)
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
    n_fft, hop_length = _check_frames(n_fft, hop_length)
    _check_bins(spec, n_fft, "spec")
    length = _check_length(length)
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
    n_fft, hop_length = _check_frames(n_fft, hop_length)
    n_mels = _check_int(n_mels, "n_mels", "mel bands", "pass e.g. 64 (the default) or 128")
    _check_window(x, n_fft)
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
    n_fft, hop_length = _check_frames(n_fft, hop_length)
    _check_bins(mag, n_fft, "mag")
    length = _check_length(length)
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
    return torch.stack([spectral_distance(x, y, n, None, eps) for n in n_ffts]).mean()
