"""Reading, writing and playing audio files (soundfile first, librosa for what it cannot read), and
finding files that were cut short.

Lesson: lessons/01_audio_representations.ipynb
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from IPython.display import Audio

from coursekit.audio.ops import resample, to_mono
from coursekit.audio.validate import (
    check_signal,
    check_sr,
)
from coursekit.files import atomic_write

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


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
