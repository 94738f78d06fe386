"""coursekit.data.folder: a folder of the user's own audio files."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from coursekit import synth
from coursekit.data import folder as folder_module
from coursekit.data.folder import AudioFolder

SR = 16000


def write(path, x, sr, subtype=None):
    """Write a numpy array [samples] or [samples, channels] with soundfile (not with coursekit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(x), sr, subtype=subtype)
    return path


def tone(freq, duration, sr, amp=0.5):
    return synth.sine(freq, duration, sr, amp=amp).numpy()


@pytest.fixture
def samples(tmp_path):
    """low/: 220 Hz tones (22,050 Hz wav, 44,100 Hz stereo flac); high/: 1 kHz tones (8 kHz WAV, 16 kHz ogg)."""
    root = tmp_path / "samples"
    write(root / "low" / "low_1.wav", tone(220, 0.5, 22050), 22050)
    left = tone(220, 0.75, 44100)
    write(root / "low" / "deep" / "low-2.flac", np.stack([left, np.zeros_like(left)], axis=1), 44100)
    write(root / "high" / "high3.WAV", tone(1000, 0.25, 8000), 8000)
    write(root / "high" / "high_4.ogg", tone(1000, 1.5, SR), SR)
    return root.resolve()  # AudioFolder reports resolved paths


def by_name(ds):
    return {Path(ds[i]["path"]).name: ds[i] for i in range(len(ds))}


# ----------------------------------------------------------------------------- discovery and items
def test_files_are_found_recursively_in_any_suffix_case_and_sorted(samples):
    ds = AudioFolder(samples)
    relative = [p.relative_to(samples).as_posix() for p in ds.files]
    assert relative == ["high/high3.WAV", "high/high_4.ogg", "low/deep/low-2.flac", "low/low_1.wav"]
    assert ds.skipped == []


def test_items_are_resampled_mono_float_tensors_with_metadata(samples, peak_hz):
    items = by_name(AudioFolder(samples, sr=SR))
    low = items["low_1.wav"]
    assert set(low) == {"audio", "sr", "path", "category", "category_index"}
    assert low["sr"] == SR and low["audio"].dtype == torch.float32
    assert low["audio"].shape == (1, 8000)  # 0.5 s at 16 kHz
    assert peak_hz(low["audio"], SR) == pytest.approx(220, abs=2)
    high = items["high3.WAV"]
    assert high["audio"].shape == (1, 4000)  # 0.25 s at 8 kHz -> 16 kHz
    assert peak_hz(high["audio"], SR) == pytest.approx(1000, abs=4)
    assert items["high_4.ogg"]["audio"].shape == (1, 24000)


def test_mono_averages_the_channels(samples):
    stereo = by_name(AudioFolder(samples, sr=44100))["low-2.flac"]["audio"]
    expected = tone(220, 0.75, 44100) / 2  # the right channel is silent
    assert stereo.shape == (1, len(expected))
    np.testing.assert_allclose(stereo[0].numpy(), expected, atol=1 / 32768)  # flac is 16-bit


def test_mono_false_keeps_the_channels_of_consistent_files(tmp_path):
    left = tone(440, 0.5, SR)
    write(tmp_path / "a.wav", np.stack([left, np.zeros_like(left)], axis=1), SR, subtype="FLOAT")
    write(tmp_path / "b.wav", np.stack([np.zeros_like(left), left], axis=1), SR, subtype="FLOAT")
    items = by_name(AudioFolder(tmp_path, mono=False))
    assert items["a.wav"]["audio"].shape == (2, 8000)
    np.testing.assert_array_equal(items["a.wav"]["audio"][0].numpy(), left)
    assert items["a.wav"]["audio"][1].abs().max() == 0 and items["b.wav"]["audio"][0].abs().max() == 0


def test_duration_pads_short_files_with_zeros_and_cuts_long_ones(samples):
    full = by_name(AudioFolder(samples))
    fixed = by_name(AudioFolder(samples, duration=1.0))
    assert {item["audio"].shape for item in fixed.values()} == {(1, SR)}
    short = fixed["high3.WAV"]["audio"][0]  # 0.25 s of tone, then zeros
    assert short[4000:].abs().max() == 0 and short[:4000].abs().max() > 0.4
    torch.testing.assert_close(short[:4000], full["high3.WAV"]["audio"][0])
    torch.testing.assert_close(fixed["high_4.ogg"]["audio"], full["high_4.ogg"]["audio"][:, :SR])


def test_dataloader_stacks_items_of_one_duration(samples):
    loader = torch.utils.data.DataLoader(AudioFolder(samples, duration=0.5), batch_size=4)
    batch = next(iter(loader))
    assert batch["audio"].shape == (4, 1, 8000)
    assert batch["category"] == ["high", "high", "deep", "low"]  # low-2.flac sits in low/deep/
    assert batch["category_index"].tolist() == [1, 1, 0, 2]


def test_loading_is_lazy_and_a_file_gone_later_is_named(samples):
    ds = AudioFolder(samples)
    (samples / "low" / "low_1.wav").unlink()  # after construction: nothing was read yet
    assert ds[0]["audio"].shape == (1, 4000)
    with pytest.raises(FileNotFoundError, match=r"low_1\.wav"):
        ds[3]


def test_describe_counts_files_per_category(samples):
    text = repr(AudioFolder(samples, duration=1.0))
    assert text.startswith(f"AudioFolder {samples}: 4 files (deep 1, high 2, low 1)")
    assert "16000 Hz, mono, 1 s each" in text


# ----------------------------------------------------------------------------- categories
def test_categories_from_the_parent_folder(samples):
    ds = AudioFolder(samples)
    assert ds.categories == ["deep", "high", "low"]
    found = {name: (item["category"], item["category_index"]) for name, item in by_name(ds).items()}
    expected = {"high3.WAV": ("high", 1), "high_4.ogg": ("high", 1), "low-2.flac": ("deep", 0), "low_1.wav": ("low", 2)}
    assert found == expected


def test_files_directly_in_root_take_the_roots_name(tmp_path):
    write(tmp_path / "drums" / "kick.wav", tone(60, 0.1, SR), SR)
    assert AudioFolder(tmp_path / "drums")[0]["category"] == "drums"


def test_categories_from_the_file_name_prefix(tmp_path):
    for name in ["kick_01.wav", "kick-soft.wav", "kick3.wav", "Snare 2.wav", "snare_a.wav"]:
        write(tmp_path / "all" / name, tone(200, 0.1, SR), SR)
    ds = AudioFolder(tmp_path, category_from="filename")
    assert ds.categories == ["Snare", "kick", "snare"]
    assert [ds[i]["category"] for i in range(len(ds))] == ["Snare", "kick", "kick", "kick", "snare"]
    assert [ds[i]["category_index"] for i in range(len(ds))] == [0, 1, 1, 1, 2]


def test_file_names_without_a_prefix_are_listed_in_the_error(tmp_path):
    write(tmp_path / "kick_1.wav", tone(200, 0.1, SR), SR)
    write(tmp_path / "808_kick.wav", tone(50, 0.1, SR), SR)
    with pytest.raises(ValueError, match=r"1 file names start with one \(e\.g\. 808_kick\.wav\)"):
        AudioFolder(tmp_path, category_from="filename")


def test_no_categories(samples):
    ds = AudioFolder(samples, category_from=None)
    assert ds.categories == []
    assert {(ds[i]["category"], ds[i]["category_index"]) for i in range(len(ds))} == {("", -1)}


# ----------------------------------------------------------------------------- bad input
def test_corrupt_and_empty_files_are_skipped_with_a_warning_naming_them(samples):
    (samples / "high" / "broken.wav").write_bytes(b"RIFF....WAVEthis is not audio")
    write(samples / "low" / "silent.wav", np.zeros(0), SR)  # a valid header, 0 frames
    with pytest.warns(UserWarning) as record:
        ds = AudioFolder(samples)
    messages = [str(w.message) for w in record]
    assert any(m.startswith(f"skipping {samples / 'high' / 'broken.wav'}: soundfile cannot read it") for m in messages)
    assert f"skipping {samples / 'low' / 'silent.wav'}: it holds no samples." in messages
    assert len(ds) == 4 and [p.name for p in ds.skipped] == ["broken.wav", "silent.wav"]
    assert "2 unreadable skipped" in ds.describe()


def test_hidden_files_are_ignored_silently(samples):
    (samples / "low" / "._low_1.wav").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    write(samples / ".trash" / "old.wav", tone(300, 0.1, SR), SR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = AudioFolder(samples)
    assert len(ds) == 4


def test_every_file_unreadable_is_an_error(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"junk")
    with pytest.warns(UserWarning, match="a.wav"), pytest.raises(ValueError, match=r"none of the 1 audio files"):
        AudioFolder(tmp_path)


def test_missing_root_is_an_error_naming_it(tmp_path):
    missing = (tmp_path / "nope").resolve()
    with pytest.raises(FileNotFoundError, match=f"audio folder not found: {re.escape(str(missing))}"):
        AudioFolder(tmp_path / "nope")


def test_a_file_instead_of_a_folder_is_an_error(samples):
    path = samples / "low" / "low_1.wav"
    expected = f"{re.escape(str(path))} is a file, not a folder.*{re.escape(str(path.parent))}"
    with pytest.raises(NotADirectoryError, match=expected):
        AudioFolder(path)


def test_empty_folder_lists_the_suffixes_searched(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no audio files under .*\.wav, \.flac, \.ogg, \.mp3.*it is empty"):
        AudioFolder(tmp_path)


def test_folder_without_audio_says_what_it_holds(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "clip.m4a").write_bytes(b"not supported")
    with pytest.raises(FileNotFoundError, match=r"it holds 2 other files \(\.m4a, \.txt\)"):
        AudioFolder(tmp_path)


def test_mono_false_with_different_channel_counts_is_an_error(samples):
    with pytest.raises(ValueError, match=r"same number of channels.*1 channel\(s\): 3 files.*2 channel\(s\): 1 files"):
        AudioFolder(samples, mono=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": 0}, r"duration=0: give a positive number of seconds"),
        ({"duration": "1"}, r"duration='1'"),
        ({"duration": 1e-6}, r"shorter than one sample"),
        ({"sr": 0}, r"sr=0 is not a valid sample rate"),
        ({"category_from": "folder"}, r"category_from='folder': use 'parent', 'filename' or None"),
    ],
)
def test_bad_arguments_are_clear_errors(samples, kwargs, message):
    with pytest.raises(ValueError, match=message):
        AudioFolder(samples, **kwargs)


def test_mp3_files_are_read(tmp_path, peak_hz):
    write(tmp_path / "tone.mp3", tone(440, 1.0, SR), SR)
    x = AudioFolder(tmp_path, duration=1.0)[0]["audio"]
    assert peak_hz(x, SR) == pytest.approx(440, abs=2)


def test_module_reads_only_headers_at_construction(monkeypatch, samples):
    def refuse(*args, **kwargs):
        raise AssertionError("audio was loaded while building the dataset")

    monkeypatch.setattr(folder_module, "load", refuse)
    assert len(AudioFolder(samples)) == 4


def test_truncated_files_are_skipped_with_a_warning_naming_them_and_the_fix(samples):
    path = samples / "low" / "low_1.wav"  # 11025 mono PCM_16 frames: 44 + 22050 bytes; half keeps 5501 frames
    path.write_bytes(path.read_bytes()[: 22094 // 2])
    with pytest.warns(UserWarning) as record:
        ds = AudioFolder(samples)
    expected = (
        f"skipping {path}: it is truncated: its header declares 11025 frames but the file holds only 5501 (50%). "
        "It was cut short (an interrupted copy, download or export): re-copy it from the original, or re-export it."
    )
    assert expected in [str(w.message) for w in record]
    assert [p.name for p in ds.skipped] == ["low_1.wav"]
    assert "low_1.wav" not in by_name(ds)


def test_a_file_truncated_after_construction_raises_instead_of_being_padded(samples):
    ds = AudioFolder(samples, duration=1.0)
    path = samples / "low" / "low_1.wav"
    path.write_bytes(path.read_bytes()[: 22094 // 2])
    with pytest.raises(ValueError, match=re.escape(f"audio file {path} is truncated") + r".*re-copy"):
        ds[3]
