"""coursekit.metrics.random_other_ratio and referee_distance: lesson 05's judge of reconstructions
(zero for a copy, one for a random other clip, independent of level, clear errors)."""

from __future__ import annotations

import auraloss
import pytest
import torch

from coursekit.metrics import REFEREE_FFTS, random_other_ratio, referee_distance


@pytest.fixture
def clips():
    torch.manual_seed(0)
    t = torch.arange(8000) / 16000
    tones = torch.stack([torch.sin(2 * torch.pi * f * t) * torch.exp(-3 * t) for f in (110.0, 220.0, 330.0, 440.0,
                         550.0, 660.0)])  # fmt: skip
    return (0.5 * tones + 0.01 * torch.randn_like(tones)).unsqueeze(1)


def test_the_referee_is_auralosss_multi_resolution_stft_with_the_issues_settings(clips):
    expected = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=[1024, 512, 256, 128], hop_sizes=[256, 128, 64, 32],
                                                     win_lengths=[1024, 512, 256, 128])  # fmt: skip
    assert REFEREE_FFTS == (1024, 512, 256, 128)
    torch.testing.assert_close(referee_distance()(clips[:2], clips[2:4]), expected(clips[:2], clips[2:4]))


def test_a_copy_scores_zero_and_the_clips_themselves_shuffled_score_about_one(clips):
    assert random_other_ratio(clips.clone(), clips) == pytest.approx(0.0, abs=1e-6)
    others = clips[torch.randperm(len(clips), generator=torch.Generator().manual_seed(0))]
    assert 0.4 < random_other_ratio(others, clips) < 1.6


def test_the_ratio_grows_with_noise_and_silence_scores_above_one(clips):
    ratios = [random_other_ratio(clips + level * torch.randn_like(clips), clips) for level in (0.001, 0.01, 0.1)]
    assert ratios == sorted(ratios) and ratios[0] < 0.5
    assert random_other_ratio(torch.zeros_like(clips), clips) > 1.0


def test_the_ratio_uses_the_distance_it_is_given(clips):
    l1 = lambda a, b: (a - b).abs().mean()  # noqa: E731
    recon = 0.9 * clips
    others = torch.randperm(len(clips), generator=torch.Generator().manual_seed(0))
    others = torch.where(others == torch.arange(len(clips)), (others + 1) % len(clips), others)
    expected = (0.1 * clips).abs().mean() / torch.stack([l1(clips[j], clips[i]) for i, j in enumerate(others)]).mean()
    assert random_other_ratio(recon, clips, l1) == pytest.approx(float(expected), rel=1e-5)


def test_mismatched_shapes_are_refused(clips):
    with pytest.raises(ValueError, match=r"reconstructions \[6, 1, 100\] and clips \[6, 1, 8000\] must have one shape"):
        random_other_ratio(clips[..., :100], clips)


def test_pitch_kept_counts_pitched_originals_and_reconstructions_within_50_cents():
    from coursekit import synth
    from coursekit.metrics import pitch_kept

    a4 = synth.sine(440.0, 0.5, 16000).view(1, -1)
    sharp = synth.sine(440.0 * 2 ** (100 / 1200), 0.5, 16000).view(1, -1)  # a semitone sharp
    slightly = synth.sine(440.0 * 2 ** (20 / 1200), 0.5, 16000).view(1, -1)  # 20 cents sharp
    noise = 0.3 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))
    originals = torch.stack([a4, a4, a4, a4, noise])
    reconstructions = torch.stack([a4, slightly, sharp, torch.zeros_like(a4), a4])
    result = pitch_kept(originals, reconstructions, [69, 69, 69, 69, 69], 16000)
    assert result == {"pitched": 4, "kept": 2, "fraction": 0.5}  # the noise original does not count
    with pytest.raises(ValueError, match=r"and 2 pitches must describe the same notes"):
        pitch_kept(originals, reconstructions, [69, 69], 16000)
    from coursekit.metrics import pitch_errors

    cents = pitch_errors(originals, [69] * 5, 16000)
    assert cents[4] is None and all(abs(c) < 10 for c in cents[:4])
    assert pitch_kept(originals, reconstructions, [69] * 5, 16000, original_cents=cents) == result
    shifted = [c + 100 for c in cents[:4]] + [None]  # originals said to be a semitone sharp: none counts
    assert pitch_kept(originals, reconstructions, [69] * 5, 16000, original_cents=shifted)["pitched"] == 0
    with pytest.raises(ValueError, match="original_cents has 2 values for 5 notes"):
        pitch_kept(originals, reconstructions, [69] * 5, 16000, original_cents=cents[:2])
