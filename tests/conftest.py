"""Shared fixtures for the coursekit unit tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

SR = 16000
COURSEKIT_VARIABLES = ("COURSEKIT_FAST", "COURSEKIT_DEVICE", "COURSEKIT_DATA", "COURSEKIT_CHECKPOINTS")


@pytest.fixture(autouse=True)
def _no_coursekit_environment(monkeypatch):
    """Each test starts without COURSEKIT_* variables (``make test`` sets COURSEKIT_FAST=1)."""
    for name in COURSEKIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def rng() -> torch.Generator:
    """A torch generator seeded the same way in every test."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def tmp_wav(tmp_path):
    """Write a numpy array ``[samples]`` or ``[samples, channels]`` with soundfile; return the path.

    Independent of ``coursekit.audio.save`` so that ``load`` is tested against files it did not write.
    """

    def write(data, sr: int = SR, subtype: str = "PCM_16", name: str = "input.wav") -> Path:
        path = tmp_path / name
        sf.write(path, np.asarray(data), sr, subtype=subtype)
        return path

    return write


@pytest.fixture
def peak_hz():
    """Measure the frequency (Hz) of the strongest FFT bin of a Hann-windowed signal."""

    def measure(x, sr: int) -> float:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])

    return measure
