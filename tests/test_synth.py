"""coursekit.synth: test signals whose pitch and spectrum are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch

from coursekit import synth

SR = 16000


def cents(f, reference):
    return 1200 * math.log2(f / reference)


def autocorrelation_pitch(x, sr, fmin=50.0, fmax=2000.0):
    """Pitch in Hz from the highest autocorrelation peak, refined by parabolic interpolation."""
    x = np.asarray(x, dtype=np.float64)
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)[: len(x)]
    lo, hi = int(sr / fmax), int(sr / fmin)
    lag = lo + int(np.argmax(ac[lo : hi + 1]))
    before, peak, after = ac[lag - 1 : lag + 2]
    return sr / (lag + 0.5 * (before - after) / (before - 2 * peak + after))


def spectral_centroid(x, sr):
    mag = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64)))
    return float((np.fft.rfftfreq(len(x), 1 / sr) * mag).sum() / mag.sum())


def rms(x):
    return float(x.pow(2).mean().sqrt())


# ----------------------------------------------------------------------------- sine
@pytest.mark.parametrize(("duration", "n"), [(0.5, 8000), (0.1234, 1974), (1 / SR, 1)])
def test_sine_length_is_duration_times_rate(duration, n):
    assert synth.sine(440, duration, SR).shape == (n,)


def test_sine_matches_its_formula():
    t = np.arange(8000) / SR
    expected = 0.3 * np.sin(2 * np.pi * 440 * t + 0.7)
    np.testing.assert_allclose(synth.sine(440, 0.5, SR, amp=0.3, phase=0.7).numpy(), expected, atol=1e-7)


def test_sine_phase_of_half_pi_starts_at_the_peak():
    x = synth.sine(440, 0.5, SR, amp=0.8, phase=math.pi / 2)
    assert float(x[0]) == pytest.approx(0.8)
    assert float(x.abs().max()) <= 0.8 + 1e-7  # float32 rounding of amp


@pytest.mark.parametrize("freq", [100.0, 440.0, 3000.0])
def test_sine_frequency_is_the_fft_peak(peak_hz, freq):
    x = synth.sine(freq, 0.5, SR)
    assert x.dtype == torch.float32
    assert abs(peak_hz(x, SR) - freq) <= SR / len(x)


@pytest.mark.parametrize("duration", [0, -0.5, math.nan])
def test_sine_rejects_non_positive_duration(duration):
    with pytest.raises(ValueError, match=rf"duration={duration} s must be positive"):
        synth.sine(440, duration, SR)


def test_sine_rejects_invalid_sample_rate():
    with pytest.raises(ValueError, match=r"sr=0 is not a valid sample rate"):
        synth.sine(440, 0.5, 0)


# ----------------------------------------------------------------------------- chirp
def test_chirp_length_and_peak():
    x = synth.chirp(200, 3200, 0.5, SR, amp=0.4)
    assert x.shape == (8000,)
    assert float(x.abs().max()) <= 0.4 + 1e-7  # float32 rounding of amp
    assert float(x.abs().max()) == pytest.approx(0.4, rel=1e-3)


def test_chirp_spectral_centroid_rises():
    x = synth.chirp(200, 3200, 0.5, SR).numpy()
    quarter = len(x) // 4
    assert spectral_centroid(x[-quarter:], SR) > 4 * spectral_centroid(x[:quarter], SR)


def test_chirp_instantaneous_frequency_sweeps_exponentially():
    x = synth.chirp(200, 3200, 0.5, SR).numpy()
    phase = np.unwrap(np.angle(scipy.signal.hilbert(x)))
    measured = np.diff(phase) * SR / (2 * np.pi)
    t = (np.arange(len(measured)) + 0.5) / SR
    expected = 200 * 16 ** (t / 0.5)  # four octaves in 0.5 s, equal time per octave
    edge = int(0.025 * SR)  # the analytic signal is unreliable at the ends
    np.testing.assert_allclose(measured[edge:-edge], expected[edge:-edge], rtol=0.02)


def test_chirp_with_equal_frequencies_is_a_sine():
    t = np.arange(8000) / SR
    np.testing.assert_allclose(synth.chirp(440, 440, 0.5, SR).numpy(), 0.5 * np.sin(2 * np.pi * 440 * t), atol=1e-6)


@pytest.mark.parametrize(("f0", "f1"), [(0, 1000), (-100, 1000), (100, 0), (100, -100), (-100, -200)])
def test_chirp_rejects_non_positive_frequencies(f0, f1):
    # Library bug: `not 0 < f0 and 0 < f1` parses as `(not 0 < f0) and (0 < f1)`, so a bad f1 slips through.
    with pytest.raises(ValueError, match=rf"f0={f0} and f1={f1} must both be positive"):
        synth.chirp(f0, f1, 0.5, SR)


def test_chirp_rejects_non_positive_duration():
    with pytest.raises(ValueError, match=r"duration=0 s must be positive"):
        synth.chirp(200, 400, 0, SR)


# ----------------------------------------------------------------------------- harmonic_tone
def test_harmonic_tone_length_and_peak_is_amp_when_phases_align(rng):
    aligned = synth.harmonic_tone(250, 0.5, SR, amp=0.7, phases=torch.full((8,), math.pi / 2))  # cosines peak at t=0
    shuffled = synth.harmonic_tone(250, 0.5, SR, phases=torch.rand(8, generator=rng) * 2 * math.pi, amp=0.7)
    assert aligned.shape == shuffled.shape == (8000,)
    assert float(aligned.abs().max()) == pytest.approx(0.7, rel=1e-3)
    assert float(shuffled.abs().max()) < 0.7


def test_harmonic_tone_harmonic_amplitudes_fall_as_one_over_k():
    x = synth.harmonic_tone(250, 0.5, SR)  # 250 Hz sits exactly on a bin of a 0.5 s FFT
    mag = np.abs(np.fft.rfft(x.numpy()))
    bins = [k * 125 for k in range(1, 9)]
    np.testing.assert_allclose(mag[bins] / mag[bins[0]], 1 / np.arange(1, 9), rtol=1e-4)


def test_harmonic_tone_leaves_out_harmonics_at_or_above_nyquist():
    x = synth.harmonic_tone(3000, 0.5, SR)  # 3, 6 kHz fit below 8 kHz; 9 kHz and up do not
    mag = np.abs(np.fft.rfft(x.numpy()))
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    strong = set(freqs[mag > 1e-3 * mag.max()])
    assert strong == {3000.0, 6000.0}


def test_harmonic_tone_phases_change_the_waveform_not_the_spectral_shape(rng):
    a = synth.harmonic_tone(250, 0.5, SR, phases=torch.rand(8, generator=rng) * 2 * math.pi)
    b = synth.harmonic_tone(250, 0.5, SR, phases=torch.rand(8, generator=rng) * 2 * math.pi)
    mag_a, mag_b = np.abs(np.fft.rfft(a.numpy())), np.abs(np.fft.rfft(b.numpy()))
    np.testing.assert_allclose(mag_a / mag_a.max(), mag_b / mag_b.max(), atol=1e-4)
    assert float((a - b).abs().max()) > 0.1


def test_harmonic_tone_phases_keep_the_magnitude_spectrum(rng):
    # Library bug: the docstring promises the same magnitude spectrum, but peak scaling to `amp` applies
    # a gain that depends on the phases (their crest factors differ), so the spectra differ by that gain.
    a = synth.harmonic_tone(250, 0.5, SR)
    b = synth.harmonic_tone(250, 0.5, SR, phases=torch.rand(8, generator=rng) * 2 * math.pi)
    mag_a, mag_b = np.abs(np.fft.rfft(a.numpy())), np.abs(np.fft.rfft(b.numpy()))
    np.testing.assert_allclose(mag_a, mag_b, atol=1e-4 * mag_a.max())


def test_harmonic_tone_rejects_fundamental_at_or_above_nyquist():
    with pytest.raises(ValueError, match=r"f0=8000 Hz is at or above Nyquist \(8000.0 Hz\): no harmonic fits"):
        synth.harmonic_tone(8000, 0.5, SR)


def test_harmonic_tone_rejects_too_few_phases():
    with pytest.raises(ValueError, match=r"phases has 1 values but 2 harmonics fit below Nyquist"):
        synth.harmonic_tone(3000, 0.5, SR, phases=torch.zeros(1))


@pytest.mark.parametrize("f0", [0.0, -220.0])
def test_harmonic_tone_rejects_non_positive_fundamental(f0):
    # Library bug: f0 <= 0 is accepted; f0 = 0 returns NaN samples (0 / 0 in the peak scaling).
    with pytest.raises(ValueError, match=rf"f0={f0}"):
        synth.harmonic_tone(f0, 0.5, SR)


# ----------------------------------------------------------------------------- pluck
def test_pluck_length_and_peak_is_amp(rng):
    x = synth.pluck(220, 0.5, SR, amp=0.6, generator=rng)
    assert x.shape == (8000,) and x.dtype == torch.float32
    assert float(x.abs().max()) == pytest.approx(0.6, rel=1e-6)


@pytest.mark.parametrize("freq", [220.0, 440.0, 880.0])
def test_pluck_pitch_within_50_cents(rng, freq):
    # 880 Hz fails: see test_pluck_pitch_is_sr_over_period_as_documented.
    x = synth.pluck(freq, 0.5, SR, generator=rng)
    assert abs(cents(autocorrelation_pitch(x, SR), freq)) < 50


@pytest.mark.parametrize("freq", [220.0, 440.0])
def test_pluck_pitch_is_sr_over_period_as_documented(rng, freq):
    # The update averages y[n - P] and y[n - P + 1], a loop delay of P - 0.5 samples.
    documented = SR / (round(SR / freq + 0.5) - 0.5)
    x = synth.pluck(freq, 0.5, SR, generator=rng)
    assert abs(cents(autocorrelation_pitch(x, SR), documented)) < 5


def test_pluck_is_deterministic_under_a_seeded_generator():
    first = synth.pluck(330, 0.25, SR, generator=torch.Generator().manual_seed(4))
    second = synth.pluck(330, 0.25, SR, generator=torch.Generator().manual_seed(4))
    other = synth.pluck(330, 0.25, SR, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("decay", [0.996, 1.0])
def test_pluck_decays(rng, decay):
    x = synth.pluck(220, 0.5, SR, decay=decay, generator=rng)
    quarter = len(x) // 4
    assert rms(x[-quarter:]) < 0.5 * rms(x[:quarter])


def test_pluck_stronger_decay_dies_faster():
    quieter = synth.pluck(220, 0.5, SR, decay=0.98, generator=torch.Generator().manual_seed(0))
    louder = synth.pluck(220, 0.5, SR, decay=0.999, generator=torch.Generator().manual_seed(0))
    quarter = len(quieter) // 4
    assert rms(quieter[-quarter:]) / rms(quieter[:quarter]) < rms(louder[-quarter:]) / rms(louder[:quarter])


def test_pluck_rejects_frequency_too_high_for_the_rate():
    with pytest.raises(ValueError, match=r"freq=12000 Hz is too high for sr=16000 Hz: .*below sr / 2"):
        synth.pluck(12000, 0.5, SR)


def test_pluck_rejects_zero_frequency():
    # Library bug: freq=0 raises ZeroDivisionError (sr / freq) instead of a ValueError naming freq.
    with pytest.raises(ValueError, match=r"freq=0"):
        synth.pluck(0, 0.5, SR)


@pytest.mark.parametrize("decay", [0.0, -0.5, 1.5])
def test_pluck_rejects_decay_outside_unit_interval(decay):
    with pytest.raises(ValueError, match=rf"decay={decay} must be in \(0, 1\]"):
        synth.pluck(220, 0.5, SR, decay=decay)


def test_pluck_rejects_non_positive_duration():
    with pytest.raises(ValueError, match=r"duration=-1 s must be positive"):
        synth.pluck(220, -1, SR)
