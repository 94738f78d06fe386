"""coursekit.data.windows: random fixed-length windows cut from longer recordings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from coursekit import audio, synth
from coursekit.data.windows import RandomWindows


class _Recordings(Dataset):
    """A source of ``{"audio": Tensor [channels, samples], "sr": int}`` items, as MusicRecordings gives."""

    def __init__(self, *items: tuple[torch.Tensor, int]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        x, sr = self.items[index]
        return {"audio": x, "sr": sr}


def _tone(freq: float, duration: float, sr: int) -> torch.Tensor:
    return synth.chirp(freq, 4 * freq, duration, sr, amp=0.5).unsqueeze(0)  # [1, samples], no two windows alike


def _silence_then_tone(sr: int = 1000) -> torch.Tensor:
    half = int(sr)
    return torch.cat([torch.zeros(1, half), synth.sine(110, 1.0, sr).unsqueeze(0)], dim=-1)  # 1 s each


@pytest.fixture
def three():
    """Three mono recordings at 1 kHz, of different lengths and pitches."""
    return _Recordings((_tone(50, 1.0, 1000), 1000), (_tone(80, 1.5, 1000), 1000), (_tone(120, 0.7, 1000), 1000))


# ----------------------------------------------------------------------------- items
def test_length_is_recordings_times_windows_per_item_and_source_index_maps_items(three):
    windows = RandomWindows(three, n_samples=100, windows_per_item=4)
    assert len(windows) == 12
    assert [windows[i]["source_index"] for i in range(12)] == [0] * 4 + [1] * 4 + [2] * 4
    for i in range(12):
        item = windows[i]
        x = three.items[item["source_index"]][0]
        torch.testing.assert_close(item["audio"], x[:, item["start"] : item["start"] + 100], rtol=0, atol=0)


def test_each_window_is_the_recording_sliced_at_its_start_as_float32(rng):
    x = torch.randn(1, 700, generator=rng, dtype=torch.float64)
    windows = RandomWindows(_Recordings((x, 1000)), n_samples=64, windows_per_item=20, seed=3)
    assert windows.sr == 1000
    starts = set()
    for i in range(len(windows)):
        item = windows[i]
        assert set(item) == {"audio", "sr", "source_index", "start"}
        assert item["audio"].shape == (1, 64) and item["audio"].dtype == torch.float32
        assert (item["sr"], item["source_index"]) == (1000, 0)
        assert 0 <= item["start"] <= 700 - 64
        torch.testing.assert_close(item["audio"], x[:, item["start"] : item["start"] + 64].float(), rtol=0, atol=0)
        starts.add(item["start"])
    assert len(starts) > 15  # the windows of one recording start in different places


def test_windows_are_cut_from_the_recordings_resampled_to_sr():
    first, second = _tone(300, 0.5, 8000), _tone(200, 0.75, 4000)  # different rates are fine when sr is given
    windows = RandomWindows(_Recordings((first, 8000), (second, 4000)), n_samples=200, windows_per_item=10, sr=2000)
    expected = [audio.resample(first, 8000, 2000), audio.resample(second, 4000, 2000)]
    assert [e.shape[-1] for e in expected] == [1000, 1500]
    assert windows.sr == 2000
    for i in range(len(windows)):
        item = windows[i]
        reference = expected[item["source_index"]]
        assert item["sr"] == 2000
        assert item["start"] <= reference.shape[-1] - 200
        torch.testing.assert_close(item["audio"], reference[:, item["start"] : item["start"] + 200])


def test_a_data_loader_stacks_windows_into_batches(three):
    windows = RandomWindows(three, n_samples=100, windows_per_item=2)
    batch = next(iter(DataLoader(windows, batch_size=5, shuffle=False)))
    assert batch["audio"].shape == (5, 1, 100)
    assert batch["source_index"].tolist() == [0, 0, 1, 1, 2]
    for i in range(5):
        torch.testing.assert_close(batch["audio"][i], windows[i]["audio"], rtol=0, atol=0)
        assert batch["start"][i].item() == windows[i]["start"]


def test_items_are_copies_of_the_stored_recording(three):
    windows = RandomWindows(three, n_samples=100)
    original = three.items[0][0].clone()
    item = windows[0]
    before = item["audio"].clone()
    item["audio"].fill_(7.0)
    torch.testing.assert_close(windows[0]["audio"], before, rtol=0, atol=0)
    torch.testing.assert_close(windows.recordings[0], original, rtol=0, atol=0)
    torch.testing.assert_close(three.items[0][0], original, rtol=0, atol=0)


# ----------------------------------------------------------------------------- where windows start
def test_starts_are_deterministic_given_seed_epoch_and_index(three):
    a = RandomWindows(three, n_samples=100, windows_per_item=5, seed=7)
    b = RandomWindows(three, n_samples=100, windows_per_item=5, seed=7)
    other_seed = RandomWindows(three, n_samples=100, windows_per_item=5, seed=8)
    epoch0 = [a[i]["start"] for i in range(len(a))]
    assert [b[i]["start"] for i in range(len(b))] == epoch0
    assert [a[i]["start"] for i in range(len(a))] == epoch0  # asking again gives the same windows
    assert sum(s != t for s, t in zip([other_seed[i]["start"] for i in range(15)], epoch0, strict=True)) >= 12

    a.set_epoch(1)
    epoch1 = [a[i]["start"] for i in range(len(a))]
    assert sum(s != t for s, t in zip(epoch1, epoch0, strict=True)) >= 12
    b.set_epoch(1)
    assert [b[i]["start"] for i in range(len(b))] == epoch1
    a.set_epoch(0)
    assert [a[i]["start"] for i in range(len(a))] == epoch0


def test_every_start_is_reachable_including_the_last_one(rng):
    windows = RandomWindows(_Recordings((torch.randn(1, 102, generator=rng), 1000)), n_samples=100)
    starts = set()
    for epoch in range(60):
        windows.set_epoch(epoch)
        starts.add(windows[0]["start"])
    assert starts == {0, 1, 2}


def test_starts_spread_over_the_whole_recording_across_epochs(three):
    windows = RandomWindows(three, n_samples=100, windows_per_item=2)
    last = 1500 - 100  # recording 1 is 1.5 s at 1 kHz
    starts = []
    for epoch in range(300):
        windows.set_epoch(epoch)
        starts += [windows[2]["start"], windows[3]["start"]]
    starts = np.array(starts)
    assert starts.min() >= 0 and starts.max() <= last
    assert starts.min() < 0.03 * last and starts.max() > 0.97 * last
    assert abs(starts.mean() - last / 2) < 0.08 * last  # about uniform, not piled up at one end


def _silent_fraction(windows: RandomWindows) -> float:
    levels = [float(audio.rms_db(windows[i]["audio"])) for i in range(len(windows))]
    return float(np.mean(np.array(levels) < -40))


def test_without_min_rms_db_about_half_the_windows_of_a_half_silent_recording_are_silent():
    source = _Recordings((_silence_then_tone(), 1000))
    windows = RandomWindows(source, n_samples=100, windows_per_item=400, seed=1)
    # starts 0..900 of 0..1900 lie wholly in the silence: 901 / 1901 = 0.47
    assert 0.38 < _silent_fraction(windows) < 0.56


def test_min_rms_db_redraws_windows_that_fall_in_silence():
    source = _Recordings((_silence_then_tone(), 1000))
    windows = RandomWindows(source, n_samples=100, windows_per_item=400, seed=1, min_rms_db=-40)
    assert _silent_fraction(windows) < 0.01  # ten draws in the silence in a row: 0.47 ** 10 = 5e-4
    starts = np.array([windows[i]["start"] for i in range(len(windows))])
    assert (starts > 900).mean() > 0.99
    assert starts.max() > 1850  # still spread over the tone part


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_samples": 0}, r"n_samples=0: use a whole number of at least 1\."),
        ({"n_samples": 100.0}, r"n_samples=100\.0: use a whole number of at least 1\."),
        ({"n_samples": 100, "windows_per_item": 2.0}, r"windows_per_item=2\.0: use a whole number of at least 1\."),
        ({"n_samples": 100, "windows_per_item": True}, r"windows_per_item=True: use a whole number"),
        ({"n_samples": 100, "windows_per_item": 0}, r"windows_per_item=0: use a whole number"),
    ],
)
def test_bad_arguments_are_rejected(three, kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomWindows(three, **kwargs)


def test_an_empty_source_is_rejected():
    with pytest.raises(ValueError, match=r"source holds no recordings: give RandomWindows a dataset with at least one"):
        RandomWindows(_Recordings(), n_samples=100)


def test_a_stereo_recording_is_rejected_with_the_mix_down_hint():
    source = _Recordings((_tone(50, 1.0, 1000), 1000), (torch.zeros(2, 1000), 1000))
    with pytest.raises(ValueError, match=r"source\[1\]\['audio'\] has 2 channels: .*coursekit\.audio\.to_mono"):
        RandomWindows(source, n_samples=100)


def test_a_recording_without_a_channel_axis_is_rejected():
    with pytest.raises(ValueError, match=r"source\[0\]\['audio'\] has shape \[1000\] \(rank 1\); expected \[channels"):
        RandomWindows(_Recordings((torch.zeros(1000), 1000)), n_samples=100)


def test_a_recording_shorter_than_a_window_is_rejected_after_resampling():
    source = _Recordings((_tone(50, 1.0, 1000), 1000), (_tone(50, 0.2, 2000), 2000))  # 400 samples, 200 at 1 kHz
    assert len(RandomWindows(source, n_samples=400, sr=2000)) == 2
    with pytest.raises(ValueError, match=r"source\[1\] is 200 samples long, shorter than n_samples=300: use shorter"):
        RandomWindows(source, n_samples=300, sr=1000)


def test_mixed_sample_rates_need_sr():
    source = _Recordings((_tone(50, 1.0, 2000), 2000), (_tone(50, 1.0, 1000), 1000))
    with pytest.raises(ValueError, match=r"the recordings have sample rates \[1000, 2000\] Hz: pass sr=\.\.\."):
        RandomWindows(source, n_samples=100)
    assert RandomWindows(source, n_samples=100, sr=1000).sr == 1000


@pytest.mark.parametrize("index", [12, 100, -1])
def test_an_index_out_of_range_raises_index_error(three, index):
    windows = RandomWindows(three, n_samples=100, windows_per_item=4)
    with pytest.raises(IndexError, match=rf"index {index} is out of range for 12 windows\."):
        windows[index]
