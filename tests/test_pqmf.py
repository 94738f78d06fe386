"""coursekit.audio.pqmf: the pseudo-QMF filter bank of lesson 05's waveform VAE (near-perfect round trip,
bands that hold their own frequencies, critically sampled shapes, clear errors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coursekit.audio.pqmf import PQMF, prototype_filter


def snr_db(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(10 * torch.log10(x.pow(2).sum() / (x - y).pow(2).sum()))


@pytest.mark.parametrize("bands", [2, 4, 16])
def test_analysis_then_synthesis_gives_the_signal_back_within_50_db(bands):
    torch.manual_seed(0)
    bank = PQMF(bands)
    x = 0.3 * torch.randn(2, 1, 64 * bands)
    sub = bank.analysis(x)
    assert sub.shape == (2, bands, 64)  # critically sampled: as many numbers as samples
    y = bank.synthesis(sub)
    assert y.shape == x.shape
    edge = bank.taps  # the filters' edges see zero padding
    assert snr_db(x[..., edge:-edge], y[..., edge:-edge]) > 50.0


def test_a_sine_at_a_band_centre_lands_in_that_band():
    bank = PQMF(16)  # bands 500 Hz wide at 16 kHz
    t = torch.arange(16000) / 16000
    for hz, band in ((1250.0, 2), (6250.0, 12)):  # centres of 1000-1500 and 6000-6500 Hz
        energy = bank.analysis(torch.sin(2 * torch.pi * hz * t).view(1, 1, -1)).pow(2).sum(dim=-1)[0]
        assert int(energy.argmax()) == band
        assert float(energy[band] / energy.sum()) > 0.99


def test_the_prototype_is_a_half_band_lowpass_at_the_band_edge():
    h = prototype_filter(8)
    response = np.abs(np.fft.rfft(h, 8192))
    edge = round(8192 / 2 / 16)  # pi / (2 * bands)
    assert len(h) == 8 * 16 and abs(response[0] - 1) < 1e-3
    assert abs(response[edge] - np.sqrt(0.5)) < 0.01  # half power where two bands meet
    assert response[2 * edge + 40 :].max() < 1e-4  # about -80 dB past the neighbouring band


def test_bad_inputs_are_refused_with_the_fix():
    bank = PQMF(4)
    with pytest.raises(ValueError, match=r"x has shape \[1, 1, 10\]; expected \[batch, 1, samples\] with samples a "
                       r"multiple of 4"):  # fmt: skip
        bank.analysis(torch.zeros(1, 1, 10))
    with pytest.raises(ValueError, match=r"bands has shape \[1, 3, 5\]; expected \[batch, 4, frames\]"):
        bank.synthesis(torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match=r"bands=1: a filter bank needs a whole number of bands, 2 or more"):
        prototype_filter(1)
