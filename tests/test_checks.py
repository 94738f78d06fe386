"""coursekit.checks: each check passes the right value quietly and names the slip in a wrong one."""

from __future__ import annotations

import math

import pytest
import torch

from coursekit import synth
from coursekit.checks import check_audio, check_batch, check_close, check_probability, check_shape, check_whole


def test_check_shape_passes_the_right_shape_and_wildcards():
    check_shape(torch.zeros(16, 1, 28, 28), [16, 1, 28, 28], "x")
    check_shape(torch.zeros(5, 3), [None, 3], "z")


@pytest.mark.parametrize(
    ("shape", "expected", "message"),
    [
        ((16, 784), [16, 1, 28, 28], r"x: expected \[16, 1, 28, 28\], got \[16, 784\]: the same 12544 numbers in "
                                     r"another shape: did you forget to reshape \(x.view\(16, 1, 28, 28\)\)\?"),
        ((1, 28, 28), [16, 1, 28, 28], r"one axis is missing: did you forget x.unsqueeze"),
        ((16, 1, 1, 28, 28), [16, 1, 28, 28], r"one axis too many: did you forget x.squeeze"),
        ((32000, 2), [2, 32000], r"the axes look swapped: did you mean x.T"),
        ((3, 4), [None, 5], r"x: expected \[any, 5\], got \[3, 4\]$"),
    ],
)
def test_check_shape_names_both_shapes_and_the_likely_slip(shape, expected, message):
    with pytest.raises(ValueError, match=message):
        check_shape(torch.zeros(shape), expected, "x")


def test_check_shape_refuses_a_non_tensor():
    with pytest.raises(TypeError, match=r"x should be a torch.Tensor of shape \[2\], got list"):
        check_shape([1.0, 2.0], [2], "x")


def test_check_close_passes_within_tolerance_and_names_the_worst_element():
    check_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]), "kl")
    check_close(0.5, 0.5, "scalar")
    with pytest.raises(ValueError, match=r"kl differs from the expected value by up to 0.5 at index \[1\]: got 2.5, "
                                         r"expected 2"):
        check_close(torch.tensor([1.0, 2.5, 3.0]), torch.tensor([1.0, 2.0, 3.0]), "kl")
    with pytest.raises(ValueError, match=r"kl: expected shape \[3\], got \[1, 3\]: one axis too many"):
        check_close(torch.zeros(1, 3), torch.zeros(3), "kl")
    with pytest.raises(ValueError, match="kl contains NaN or inf"):
        check_close(torch.tensor([math.nan]), torch.tensor([0.0]), "kl")


def test_check_audio_passes_a_tone_and_names_each_fault():
    tone = synth.sine(440.0, 0.5, 16000, amp=0.5)
    check_audio(tone, 16000, expected_sr=16000, name="tone")
    with pytest.raises(ValueError, match=r"tone is at 8000 Hz but 16000 Hz is expected: resample it"):
        check_audio(tone, 8000, expected_sr=16000, name="tone")
    with pytest.raises(ValueError, match=r"tone is silent: RMS -\d+\.\d dB, below -60 dB"):
        check_audio(tone * 1e-5, 16000, name="tone")
    with pytest.raises(ValueError, match=r"tone clips: \d+\.\d\d% of its samples reach 0.999 \(peak 1.000\)"):
        check_audio((tone * 4).clamp(-1, 1), 16000, name="tone")
    with pytest.raises(ValueError, match="tone contains NaN or inf"):
        check_audio(torch.full((100,), math.nan), 16000, name="tone")
    with pytest.raises(TypeError, match="tone should be a float torch.Tensor"):
        check_audio(torch.zeros(100, dtype=torch.int16), 16000, name="tone")


def test_value_checks_name_the_argument():
    check_whole(3, "n")
    check_probability(0.5, "p")
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match=rf"n={bad!r} must be a whole number >= 1"):
            check_whole(bad, "n")
    for bad in (0.0, 1.0, "0.5"):
        with pytest.raises(ValueError, match=r"must be a probability strictly between 0 and 1"):
            check_probability(bad, "p")


def test_check_batch_suggests_the_missing_batch_axis():
    check_batch(torch.zeros(4, 1, 8, 8), (1, 8, 8), "features")
    with pytest.raises(ValueError, match=r"features has shape \[1, 8, 8\]; expected \[batch, 1, 8, 8\]: add the batch "
                                         r"dimension with features.unsqueeze\(0\)"):
        check_batch(torch.zeros(1, 8, 8), (1, 8, 8), "features")
    with pytest.raises(TypeError, match="must be a float torch.Tensor"):
        check_batch(torch.zeros(4, 1, 8, 8, dtype=torch.long), (1, 8, 8), "features")
