"""coursekit.data.crops.RandomCrops: lesson 05's random training windows (content from the clips, new
windows each epoch, fixed by the seed, clear errors)."""

from __future__ import annotations

import pytest
import torch

from coursekit.data.crops import RandomCrops


def ramps(n: int = 3, samples: int = 50) -> torch.Tensor:
    """Clip c holds c * 1000 + sample index, so a crop tells where it came from."""
    return (torch.arange(n)[:, None] * 1000 + torch.arange(samples)).float().unsqueeze(1)


def test_each_window_is_a_contiguous_piece_of_the_clip_it_names():
    crops = RandomCrops(ramps(), 10, n_items=20, seed=0)
    for i in range(len(crops)):
        item = crops[i]
        window = item["audio"][0]
        assert window.shape == (10,)
        start = int(window[0]) - item["clip"] * 1000
        assert 0 <= start <= 40 and torch.equal(window, ramps()[item["clip"], 0, start : start + 10])


def test_a_new_epoch_draws_new_windows_and_the_seed_fixes_all_of_them():
    first = RandomCrops(ramps(), 10, n_items=8, seed=3)
    epoch1 = torch.stack([first[i]["audio"] for i in range(8)])
    epoch2 = torch.stack([first[i]["audio"] for i in range(8)])
    assert not torch.equal(epoch1, epoch2) and first.epoch == 2
    again = RandomCrops(ramps(), 10, n_items=8, seed=3)
    assert torch.equal(torch.stack([again[i]["audio"] for i in range(8)]), epoch1)


@pytest.mark.parametrize(
    ("clips", "crop", "n_items", "message"),
    [
        (torch.zeros(3, 50), 10, 5, r"clips has shape \[3, 50\]; expected Tensor \[n_clips, 1, samples\]"),
        (ramps(), 60, 5, r"crop=60: give a whole number of samples from 1 to the clips' 50"),
        (ramps(), 10, 0, r"n_items=0: give how many windows make an epoch"),
    ],
)
def test_bad_arguments_are_refused(clips, crop, n_items, message):
    with pytest.raises(ValueError, match=message):
        RandomCrops(clips, crop, n_items)
