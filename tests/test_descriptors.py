"""coursekit.descriptors: frame-wise loudness, centroid, flatness and onset strength of lesson 05, and the
correlation of latent channels with them (known values, alignment with latent frames, clear errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coursekit.descriptors import DESCRIPTORS, beat_strength, comb_share, frame_descriptors, latent_correlations

SR = 16000


def sine(hz: float, amplitude: float = 0.5, seconds: float = 0.512) -> torch.Tensor:
    t = torch.arange(round(seconds * SR)) / SR
    return amplitude * torch.sin(2 * torch.pi * hz * t)


def test_a_sine_has_its_level_and_its_frequency_as_loudness_and_centroid():
    d = frame_descriptors(sine(1000.0, 0.5), SR)
    assert set(d) == set(DESCRIPTORS) and all(v.shape == (64,) for v in d.values())  # one per 128 samples
    inner = slice(4, -4)  # away from the zero padding at the ends
    assert np.allclose(d["loudness"][inner], 20 * math.log10(0.5 / math.sqrt(2)), atol=0.2)
    assert np.allclose(d["centroid"][inner], 1000.0, rtol=0.02)
    assert d["flatness"][inner].max() < 0.01  # a pure tone is as far from noise as it gets


def test_noise_is_flatter_than_a_tone_and_a_click_is_an_onset_at_its_frame():
    noise = 0.3 * torch.randn(8192, generator=torch.Generator().manual_seed(0))
    assert np.median(frame_descriptors(noise, SR)["flatness"]) > 0.3
    clicks = torch.zeros(8192)
    clicks[40 * 128 : 40 * 128 + 64] = 0.8 * torch.randn(64, generator=torch.Generator().manual_seed(1))
    onset = frame_descriptors(clicks, SR)["onset"]
    assert abs(int(np.argmax(onset)) - 40) <= 2  # the burst starts in latent frame 40


def test_correlations_are_plus_one_minus_one_and_zero_for_known_pairs():
    frames = 50
    ramp = np.linspace(0, 1, frames)
    mu = torch.tensor(np.stack([2 * ramp + 1, -ramp, np.ones(frames)]))
    table = latent_correlations(mu, {"up": ramp, "down": ramp[::-1].copy()})
    np.testing.assert_allclose(table, [[1, -1], [-1, 1], [0, 0]], atol=1e-12)


def test_bad_inputs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"x has 1000 samples: give a multiple of hop=128"):
        frame_descriptors(torch.zeros(1000), SR)
    with pytest.raises(ValueError, match=r"x has shape \[2, 1024\]; expected one mono signal"):
        frame_descriptors(torch.zeros(2, 1024), SR)
    with pytest.raises(ValueError, match=r"mu has shape \[3, 10\] and the descriptors 12 frames"):
        latent_correlations(torch.zeros(3, 10), {"loudness": np.zeros(12)})


def test_a_click_every_beat_has_a_strong_beat_and_noise_has_none():
    samples = 4 * SR
    clicks = torch.zeros(samples - samples % 128)
    beat = round(SR * 60 / 128)  # 128 BPM, inside the default 120-135 range
    for start in range(0, len(clicks) - 64, beat):
        clicks[start : start + 64] = 0.8 * torch.randn(64, generator=torch.Generator().manual_seed(start))
    noise = 0.3 * torch.randn(len(clicks), generator=torch.Generator().manual_seed(1))
    assert beat_strength(clicks, SR) > 0.5 > 0.2 > beat_strength(noise, SR)
    assert beat_strength(clicks, SR, bpm_range=(80.0, 90.0)) < 0.3  # no period at those tempos
    assert beat_strength(torch.zeros(8192), SR) == 0.0


def test_comb_share_finds_a_buzz_at_the_frame_rate_and_not_in_noise():
    buzz = torch.zeros(SR)
    buzz[::128] = 1.0  # one click per 128 samples: 125 Hz and its harmonics
    noise = 0.3 * torch.randn(SR, generator=torch.Generator().manual_seed(2))
    assert comb_share(buzz, SR) > 0.95
    assert comb_share(noise, SR) < 0.1  # 5 Hz of every 125 Hz
    assert comb_share(sine(200.0, seconds=1.0), SR) < 0.01 < comb_share(sine(250.0, seconds=1.0), SR)


def test_loud_flatness_tells_a_tone_from_noise_and_ignores_the_silence_after_it():
    from coursekit.descriptors import loud_flatness

    t = torch.arange(8000) / 16000
    tone = torch.cat([0.5 * torch.sin(2 * math.pi * 440 * t), torch.zeros(8000)])
    noise = torch.cat([0.3 * torch.randn(8000, generator=torch.Generator().manual_seed(0)), torch.zeros(8000)])
    assert loud_flatness(tone, 16000) < 0.01 < 0.3 < loud_flatness(noise, 16000)
    with_faint_hiss = tone + 1e-4 * torch.randn(16000, generator=torch.Generator().manual_seed(1))
    assert loud_flatness(with_faint_hiss, 16000) < 0.01  # the hiss alone (-80 dB) is more than 30 dB down
