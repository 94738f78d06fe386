"""Pseudo-QMF: split audio into ``bands`` critically sampled frequency bands and put it back together.

A waveform model that runs its first layers at 16 kHz spends most of its time there (bench/decode.py
measured it). RAVE's answer, borrowed here: a cosine-modulated filter bank turns
``[batch, 1, samples]`` into ``[batch, bands, samples / bands]`` (band k holds the frequencies
``k * sr / (2 * bands)`` to ``(k + 1) * sr / (2 * bands)``, shifted down to baseband), so every layer
of the network runs ``bands`` times slower, and the synthesis bank turns the network's bands back into
a waveform. The round trip is not exact (a pseudo-QMF cancels aliasing between neighbouring bands
only), but with a Kaiser prototype of 100 dB stop-band attenuation the error is far below what a
listener or the spectral distance notices: ``tests/test_pqmf.py`` measures it.

The prototype low-pass filter ``h`` (cut-off near ``pi / (2 * bands)``) follows Lin and Vaidyanathan
(1998): a Kaiser window, with the cut-off chosen so that ``h * h[::-1]`` is as close as possible to a
Nyquist(2 * bands) filter. Band k's analysis filter is ``2 h[n] cos((2k + 1) pi / (2 bands) (n - (N -
1) / 2) + (-1)^k pi / 4)``, its synthesis filter the same with ``- (-1)^k pi / 4``.

Example:
    >>> bank = PQMF(16)
    >>> bands = bank.analysis(x)           # x [b, 1, 16000] -> [b, 16, 1000]
    >>> y = bank.synthesis(bands)          # [b, 1, 16000], y close to x

Lesson: lessons/05_waveform_vae.ipynb
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.signal import firwin, kaiser_beta
from torch import nn
from torch.nn import functional as F

ATTENUATION_DB = 100.0  # stop-band attenuation of the prototype filter


def prototype_filter(bands: int, taps_per_band: int = 16, attenuation_db: float = ATTENUATION_DB) -> np.ndarray:
    """The prototype low-pass filter of a ``bands``-band PQMF: float64 array of ``taps_per_band * bands``
    taps (an even number, so the filter has a half-sample centre like RAVE's).

    The cut-off minimises the largest off-centre tap of ``h * h[::-1]`` at multiples of ``2 * bands``,
    which is what makes neighbouring bands' aliasing cancel.
    """
    if not isinstance(bands, int) or bands < 2:
        raise ValueError(f"bands={bands!r}: a filter bank needs a whole number of bands, 2 or more (e.g. 16).")
    taps = taps_per_band * bands
    beta = kaiser_beta(attenuation_db)

    def design(cutoff: float) -> np.ndarray:
        return firwin(taps, cutoff, window=("kaiser", beta), scale=False)

    def aliasing(cutoff: float) -> float:
        h = design(cutoff)
        c = np.convolve(h, h[::-1])
        centre = len(c) // 2
        off = np.concatenate([c[centre::-2 * bands][1:], c[centre :: 2 * bands][1:]])
        return float(np.abs(off).max() / abs(c[centre]))

    best = minimize_scalar(aliasing, bounds=(0.25 / bands, 0.75 / bands), method="bounded",
                           options={"xatol": 1e-7})  # fmt: skip
    return design(float(best.x))


class PQMF(nn.Module):
    """A ``bands``-band pseudo-QMF filter bank with fixed (not trained) filters.

    Shapes: ``analysis``: ``[batch, 1, samples]`` (samples a multiple of ``bands``) -> ``[batch, bands,
    samples / bands]``; ``synthesis``: the reverse. Both are strided convolutions with the ``N`` filter
    taps, so they cost ``N`` multiply-adds per audio sample whatever ``bands`` is.

    Lesson: lessons/05_waveform_vae.ipynb
    """

    def __init__(self, bands: int = 16, taps_per_band: int = 16) -> None:
        super().__init__()
        self.bands = bands
        h = prototype_filter(bands, taps_per_band)
        n = np.arange(len(h)) - (len(h) - 1) / 2
        k = np.arange(bands)[:, None]
        phase = (2 * k + 1) * math.pi / (2 * bands) * n
        sign = (-1.0) ** k * math.pi / 4
        analysis = 2 * h * np.cos(phase + sign)  # [bands, taps]
        synthesis = 2 * h * np.cos(phase - sign)
        # conv1d correlates, so the analysis filters are stored reversed; fixed, so not saved in checkpoints
        self.register_buffer("analysis_filters", torch.tensor(analysis[:, None, ::-1].copy()).float(), persistent=False)
        self.register_buffer("synthesis_filters", torch.tensor(synthesis[:, None, :].copy()).float(), persistent=False)
        self.taps = len(h)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """``x [batch, 1, samples]`` -> bands ``[batch, bands, samples / bands]`` (each critically sampled)."""
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[-1] % self.bands:
            raise ValueError(
                f"x has shape {list(x.shape)}; expected [batch, 1, samples] with samples a multiple of "
                f"{self.bands} (the number of bands)."
            )
        pad = self.taps // 2
        x = F.pad(x, (pad, pad - 1))
        return F.conv1d(x, self.analysis_filters, stride=self.bands)

    def synthesis(self, bands: torch.Tensor) -> torch.Tensor:
        """Bands ``[batch, bands, frames]`` -> audio ``[batch, 1, frames * bands]``."""
        if bands.dim() != 3 or bands.shape[1] != self.bands:
            raise ValueError(f"bands has shape {list(bands.shape)}; expected [batch, {self.bands}, frames].")
        y = F.conv_transpose1d(bands, self.synthesis_filters * self.bands, stride=self.bands)
        start = self.taps // 2
        return y[..., start : start + bands.shape[-1] * self.bands]
