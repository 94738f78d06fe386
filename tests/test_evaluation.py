"""coursekit.evaluation: pitch in MIDI numbers, histogram KL, Fréchet and kernel distances, different bins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from coursekit import evaluation, synth

SR = 16000


def _note(midi: float, seconds: float = 1.0, vibrato_cents: float = 0.0) -> torch.Tensor:
    t = torch.arange(round(seconds * SR)) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12) * 2 ** (vibrato_cents / 1200 * torch.sin(2 * math.pi * 5 * t))
    phase = 2 * math.pi * torch.cumsum(f0, 0) / SR
    return (0.5 * torch.sin(phase)).view(1, 1, -1)


def test_note_pitches_are_midi_numbers_and_nan_for_silence():
    clips = torch.cat([_note(60), _note(69), _note(76.0), torch.zeros(1, 1, SR)])
    pitches = evaluation.note_pitches(clips, SR)
    assert pitches[:3].tolist() == pytest.approx([60, 69, 76], abs=0.1)
    assert math.isnan(pitches[3])


def test_note_pitches_resample_other_rates():
    assert evaluation.note_pitches(synth.sine(440.0, 1.0, 22050).float().view(1, 1, -1),
                                   22050)[0] == pytest.approx(69, abs=0.1)  # fmt: skip


def test_the_documents_hz_counts_call_one_vibrato_note_dozens_of_pitches():
    clip = _note(69, seconds=2.0, vibrato_cents=30)
    hz = evaluation.frame_pitches_hz(clip, SR)
    counts = evaluation.hz_counts(hz)
    assert counts["distinct_hz"] > 50 and counts["range_hz"] > 10  # 30 cents either side of 440 Hz is +-7.7 Hz
    assert evaluation.pitch_statistics(evaluation.note_pitches(clip, SR))["distinct"] == 1


def test_hz_counts_of_nothing():
    assert evaluation.hz_counts(torch.empty(0))["distinct_hz"] == 0


def test_pitch_statistics_of_known_notes():
    stats = evaluation.pitch_statistics(torch.tensor([60.2, 61.8, 64.0, 72.1, float("nan")]))
    # keys 60, 62, 64, 72 -> classes C, D, E, C: shares 1/2, 1/4, 1/4 -> entropy 1.5 bits
    assert stats == {"voiced": 4, "distinct": 4, "range_semitones": 12.0, "class_entropy_bits": pytest.approx(1.5)}
    assert evaluation.pitch_statistics(torch.tensor([float("nan")]))["voiced"] == 0


def test_pitch_class_entropy_is_at_most_log2_12():
    stats = evaluation.pitch_statistics(torch.arange(48, 72).float())
    assert stats["class_entropy_bits"] == pytest.approx(math.log2(12))


def test_pitch_class_histogram_rounds_to_keys():
    counts = evaluation.pitch_class_histogram(torch.tensor([61.4, 73.0, 59.6, float("nan")]))
    assert counts.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # 59.6 rounds to 60 (C); 61.4 and 73 are C#


def test_histogram_kl_against_scipy_and_its_direction():
    p, q = torch.tensor([10.0, 5, 0, 1]), torch.tensor([1.0, 1, 8, 6])
    expected = scipy.stats.entropy((p + 1).numpy(), (q + 1).numpy(), base=2)
    assert evaluation.histogram_kl(p, q) == pytest.approx(expected)
    assert evaluation.histogram_kl(p, p) == pytest.approx(0.0, abs=1e-12)
    assert evaluation.histogram_kl(p, q) != pytest.approx(evaluation.histogram_kl(q, p))


def test_histogram_kl_rejects_bad_input():
    with pytest.raises(ValueError, match="same bins"):
        evaluation.histogram_kl(torch.ones(12), torch.ones(11))
    with pytest.raises(ValueError, match="smoothing > 0"):
        evaluation.histogram_kl(torch.ones(12), torch.ones(12), smoothing=0)


def test_pitch_accuracy_counts_rounded_keys_and_unvoiced_as_wrong():
    midi = torch.tensor([60.3, 61.6, float("nan"), 72.0])
    assert evaluation.pitch_accuracy(midi, torch.tensor([60, 61, 62, 60])) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="alike"):
        evaluation.pitch_accuracy(midi, torch.tensor([60]))


def _scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_x @ cov_y).real
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(cov_x + cov_y - 2 * covmean))


def test_frechet_distance_matches_scipy_sqrtm_on_random_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 8, generator=g)
    b = torch.randn(400, 8, generator=g) @ torch.randn(8, 8, generator=g) * 0.5 + 1.0
    assert evaluation.frechet_distance(a, b) == pytest.approx(_scipy_frechet(a.double().numpy(), b.double().numpy()),
                                                              rel=1e-6)  # fmt: skip


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_noise():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(300, 6, generator=g)
    assert evaluation.frechet_distance(a, a.clone()) == pytest.approx(0.0, abs=1e-8)
    noise = torch.randn(300, 6, generator=g)
    distances = [evaluation.frechet_distance(a, a + s * noise) for s in (0.1, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances) and distances[0] > 0


def test_frechet_distance_of_one_dimensional_gaussians_has_the_closed_form():
    # N(m1, s1^2) and N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2, here with the sample moments
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(1000, 1, generator=g), 3 + 2 * torch.randn(800, 1, generator=g)
    expected = (a.mean() - b.mean()) ** 2 + (a.std() - b.std()) ** 2
    assert evaluation.frechet_distance(a, b) == pytest.approx(float(expected), rel=1e-5)


def test_frechet_distance_is_biased_upwards_at_small_sizes_where_the_kernel_distance_is_not():
    g = torch.Generator().manual_seed(3)
    small = [evaluation.frechet_distance(torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g))
             for _ in range(20)]  # fmt: skip
    large = [evaluation.frechet_distance(torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g))
             for _ in range(5)]  # fmt: skip
    assert min(small) > 0 and np.mean(small) > 10 * np.mean(large)
    kernel = [evaluation.kernel_distance(torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g))
              for _ in range(200)]  # fmt: skip
    assert abs(np.mean(kernel)) < 3 * np.std(kernel) / math.sqrt(len(kernel))  # 0 in expectation
    assert min(kernel) < 0  # unbiased, so it dips below 0 by chance


def test_kernel_distance_matches_a_direct_sum_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(7, 3, generator=g).double(), torch.randn(5, 3, generator=g).double()

    def k(x, y):
        return (float(x @ y) / 3 + 1) ** 3

    xx = sum(k(a[i], a[j]) for i in range(7) for j in range(7) if i != j) / 42
    yy = sum(k(b[i], b[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(a[i], b[j]) for i in range(7) for j in range(5)) / 35
    assert evaluation.kernel_distance(a, b) == pytest.approx(xx + yy - 2 * xy)
    base = torch.randn(200, 4, generator=g)
    assert evaluation.kernel_distance(base, base + 1.0) > evaluation.kernel_distance(base, base + 0.2) > 0


def test_embedding_distances_reject_mismatched_sets():
    with pytest.raises(ValueError, match="embed both the same way"):
        evaluation.frechet_distance(torch.randn(5, 3), torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"b must be a Tensor \[n >= 2, dims\]"):
        evaluation.kernel_distance(torch.randn(5, 3), torch.randn(1, 3))


def test_mfcc_frames_stack_every_frame_of_every_clip():
    import librosa

    clips = torch.cat([_note(60), _note(72)])
    frames = evaluation.mfcc_frames(clips, SR)
    one = librosa.feature.mfcc(y=clips[1, 0].double().numpy(), sr=SR, n_mfcc=13)
    assert frames.shape == (2 * one.shape[1], 13)
    assert torch.allclose(frames[one.shape[1] :], torch.from_numpy(one.T).float(), rtol=1e-4, atol=1e-2)


def test_different_bins_tells_a_covering_generator_from_a_collapsed_one():
    g = torch.Generator().manual_seed(5)
    reference = torch.randn(1000, 4, generator=g)
    covering = evaluation.different_bins(reference, torch.randn(1000, 4, generator=g))
    collapsed = evaluation.different_bins(reference, reference[:1] + 0.01 * torch.randn(1000, 4, generator=g))
    assert covering["different"] <= 3 and collapsed["different"] >= 8
    assert collapsed["generated_share"].max() == pytest.approx(1.0)
    assert covering["reference_share"].sum() == pytest.approx(1.0)


def test_different_bins_needs_enough_reference_points():
    with pytest.raises(ValueError, match="fewer than bins=10"):
        evaluation.different_bins(torch.randn(5, 2), torch.randn(50, 2))


def test_clips_must_be_mono_batches():
    with pytest.raises(ValueError, match=r"clips must be a Tensor \[n >= 1, 1, samples\]"):
        evaluation.note_pitches(torch.zeros(SR), SR)


def test_one_crepe_pass_gives_both_the_note_pitches_and_the_frame_frequencies():
    clips = torch.cat([_note(57), torch.zeros(1, 1, SR)])
    frames = evaluation.voiced_frames(clips, SR)
    assert len(frames) == 2 and len(frames[0]) > 40 and len(frames[1]) == 0
    medians = evaluation.frame_medians(frames)
    assert medians[0] == pytest.approx(57, abs=0.1) and math.isnan(medians[1])
    assert torch.allclose(evaluation.midi_to_hz(torch.cat(frames)), evaluation.frame_pitches_hz(clips, SR))
    assert float(evaluation.midi_to_hz(torch.tensor(69.0))) == pytest.approx(440.0)
