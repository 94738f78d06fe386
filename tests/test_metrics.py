"""coursekit.metrics: spectral convergence and SNR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coursekit import metrics

SR = 16000


def test_spectral_convergence_is_zero_for_identical_magnitudes(rng):
    mag = torch.rand(65, 20, generator=rng)
    assert metrics.spectral_convergence(mag, mag.clone()) == 0.0


def test_spectral_convergence_is_one_against_silence(rng):
    mag = torch.rand(65, 20, generator=rng)
    assert metrics.spectral_convergence(mag, torch.zeros_like(mag)) == pytest.approx(1.0, rel=1e-6)


def test_spectral_convergence_of_a_scaled_estimate_is_the_scale_error(rng):
    mag = torch.rand(65, 20, generator=rng)
    assert metrics.spectral_convergence(mag, 0.75 * mag) == pytest.approx(0.25, rel=1e-5)


def test_spectral_convergence_matches_frobenius_norm_ratio(rng):
    ref, est = torch.rand(2, 3, 65, 20, generator=rng)
    expected = np.linalg.norm((ref - est).numpy()) / np.linalg.norm(ref.numpy())
    assert metrics.spectral_convergence(ref, est) == pytest.approx(expected, rel=1e-5)


def test_spectral_convergence_rejects_shape_mismatch():
    with pytest.raises(ValueError, match=r"mag_ref has shape \[2, 3\] but mag_est has \[3, 2\]"):
        metrics.spectral_convergence(torch.ones(2, 3), torch.ones(3, 2))


def test_spectral_convergence_rejects_silent_reference():
    with pytest.raises(ValueError, match=r"mag_ref is all zeros \(silence\): spectral convergence is undefined"):
        metrics.spectral_convergence(torch.zeros(4, 5), torch.ones(4, 5))


def test_snr_db_of_a_ten_percent_gain_error_is_20_db(rng):
    ref = torch.rand(2, 1000, generator=rng) - 0.5
    assert metrics.snr_db(ref, 0.9 * ref) == pytest.approx(20.0, abs=1e-4)


@pytest.mark.parametrize(("scale", "expected_db"), [(0.0, 0.0), (-1.0, -10 * math.log10(4)), (0.99, 40.0)])
def test_snr_db_known_values(rng, scale, expected_db):
    ref = torch.rand(1000, generator=rng) - 0.5
    assert metrics.snr_db(ref, scale * ref) == pytest.approx(expected_db, abs=1e-3)


def test_snr_db_of_a_sine_with_known_noise_power():
    t = torch.arange(SR, dtype=torch.float64) / SR
    ref = torch.sin(2 * math.pi * 100 * t)  # power 1/2
    error = 0.05 * torch.sin(2 * math.pi * 1000 * t)  # power 0.05^2 / 2
    assert metrics.snr_db(ref, ref + error) == pytest.approx(10 * math.log10(1 / 0.05**2), abs=1e-6)


def test_snr_db_is_infinite_for_identical_signals(rng):
    ref = torch.rand(1000, generator=rng)
    assert metrics.snr_db(ref, ref.clone()) == math.inf


def test_snr_db_rejects_shape_mismatch():
    with pytest.raises(ValueError, match=r"ref has shape \[100\] but est has \[1, 100\]"):
        metrics.snr_db(torch.zeros(100), torch.zeros(1, 100))


def test_snr_db_checks_its_inputs_by_name():
    with pytest.raises(TypeError, match=r"est must be a torch.Tensor, got ndarray"):
        metrics.snr_db(torch.zeros(100), np.zeros(100))
    with pytest.raises(ValueError, match=r"ref contains 1 NaN or inf samples"):
        metrics.snr_db(torch.tensor([1.0, math.nan]), torch.zeros(2))


def test_every_core_uses_the_allowed_cores_and_restores_the_callers_thread_count():
    import os

    from coursekit.metrics import every_core

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with every_core() as cores:
            assert cores == len(os.sched_getaffinity(0))
            assert torch.get_num_threads() == cores
        assert torch.get_num_threads() == 1
        with pytest.raises(RuntimeError, match="inside"):
            with every_core():
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 1, "restored after an exception too"
    finally:
        torch.set_num_threads(before)
