"""coursekit.data.nsynth: the NSynth reader on hand-written NSynth files, NSynth-mini, pitch_error_cents."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from coursekit import audio, synth
from coursekit.data import nsynth
from coursekit.data.nsynth import NSynth, NSynthMini, render_nsynth_mini
from coursekit.metrics import pitch_error_cents

SR = 16000
PCM16_STEP = 1 / 32768
# NSynth's label order, as published with the dataset (magenta.tensorflow.org/datasets/nsynth)
NSYNTH_FAMILIES = [
    "bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal",
]  # fmt: skip
NSYNTH_SOURCES = ["acoustic", "electronic", "synthetic"]
# (family, source, instrument number, pitch, velocity) of the hand-written train split
TRAIN_NOTES = [
    ("bass", "electronic", 0, 40, 100),
    ("guitar", "acoustic", 3, 60, 50),
    ("guitar", "acoustic", 3, 64, 127),
    ("flute", "acoustic", 1, 72, 25),
    ("keyboard", "synthetic", 2, 84, 75),
]


def midi_hz(pitch: float) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def note_wave(pitch: int, velocity: int, n_samples: int = 64000, sr: int = SR) -> np.ndarray:
    """A sine at the note's frequency whose amplitude follows the velocity."""
    t = np.arange(n_samples) / sr
    return (0.8 * velocity / 127 * np.sin(2 * np.pi * midi_hz(pitch) * t)).astype(np.float32)


def write_nsynth(root, split="train", notes=TRAIN_NOTES):
    """Write NSynth's json/wav layout by hand; return {note_str: (entry, samples written)}."""
    audio_dir = root / f"nsynth-{split}" / "audio"
    audio_dir.mkdir(parents=True)
    examples, written = {}, {}
    for k, (family, source, number, pitch, velocity) in enumerate(notes):
        instrument_str = f"{family}_{source}_{number:03d}"
        note_str = f"{instrument_str}-{pitch:03d}-{velocity:03d}"
        examples[note_str] = {
            "note": 1000 + k,
            "note_str": note_str,
            "pitch": pitch,
            "velocity": velocity,
            "sample_rate": SR,
            "instrument": 500 + number,
            "instrument_str": instrument_str,
            "instrument_family": NSYNTH_FAMILIES.index(family),
            "instrument_family_str": family,
            "instrument_source": NSYNTH_SOURCES.index(source),
            "instrument_source_str": source,
            "qualities": [0, 1, 0, 0, 0, 0, 0, 0, 1, 0],
            "qualities_str": ["dark", "reverb"],
        }
        x = note_wave(pitch, velocity)
        sf.write(audio_dir / f"{note_str}.wav", x, SR, subtype="PCM_16")
        written[note_str] = (examples[note_str], x)
    # reversed so that the reader's sorting, not the file's order, decides the item order
    (audio_dir.parent / "examples.json").write_text(json.dumps(dict(reversed(examples.items()))))
    return written


@pytest.fixture
def fake_nsynth(tmp_path):
    root = tmp_path / "nsynth"
    return root, write_nsynth(root)


# ----------------------------------------------------------------------------- reading NSynth's format
def test_labels_are_nsynths():
    assert list(nsynth.FAMILIES) == NSYNTH_FAMILIES
    assert list(nsynth.SOURCES) == NSYNTH_SOURCES


def test_reads_handwritten_nsynth_in_note_str_order(fake_nsynth):
    root, written = fake_nsynth
    notes = NSynth(root, "train")
    assert len(notes) == 5
    assert [e["note_str"] for e in notes.examples] == sorted(written)
    for index, note_str in enumerate(sorted(written)):
        entry, x = written[note_str]
        item = notes[index]
        assert item["audio"].shape == (1, 64000) and item["audio"].dtype == torch.float32
        torch.testing.assert_close(item["audio"][0], torch.from_numpy(x), atol=PCM16_STEP, rtol=0)
        assert item["sr"] == SR
        assert {k: v for k, v in item.items() if k not in ("audio", "sr")} == {k: entry[k] for k in nsynth.ITEM_KEYS}
    assert notes.examples[0]["qualities_str"] == ["dark", "reverb"]


def test_items_collate_into_batches(fake_nsynth):
    root, written = fake_nsynth
    batch = next(iter(DataLoader(NSynth(root), batch_size=3)))
    assert batch["audio"].shape == (3, 1, 64000)
    assert batch["pitch"].tolist() == [written[s][0]["pitch"] for s in sorted(written)[:3]]
    assert batch["note_str"] == sorted(written)[:3]


def test_sr_argument_resamples_and_keeps_the_pitch(fake_nsynth, peak_hz):
    root, written = fake_nsynth
    notes = NSynth(root, sr=8000)
    index = [e["note_str"] for e in notes.examples].index("guitar_acoustic_003-060-050")
    item = notes[index]
    assert item["sr"] == 8000 and item["audio"].shape == (1, 32000)
    assert abs(peak_hz(item["audio"][0], 8000) - midi_hz(60)) < 0.5


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"families": ["guitar"]}, {"guitar_acoustic_003-060-050", "guitar_acoustic_003-064-127"}),
        ({"families": 3}, {"guitar_acoustic_003-060-050", "guitar_acoustic_003-064-127"}),
        ({"families": ["bass", 2]}, {"bass_electronic_000-040-100", "flute_acoustic_001-072-025"}),
        ({"sources": "synthetic"}, {"keyboard_synthetic_002-084-075"}),
        ({"sources": [1, "synthetic"]}, {"bass_electronic_000-040-100", "keyboard_synthetic_002-084-075"}),
        (
            {"pitch_range": (60, 72)},
            {"guitar_acoustic_003-060-050", "guitar_acoustic_003-064-127", "flute_acoustic_001-072-025"},
        ),
        ({"velocities": [25, 127]}, {"flute_acoustic_001-072-025", "guitar_acoustic_003-064-127"}),
        ({"families": "guitar", "velocities": 127}, {"guitar_acoustic_003-064-127"}),
    ],
)
def test_filters_keep_exactly_the_matching_notes(fake_nsynth, filters, expected):
    root, _ = fake_nsynth
    assert {e["note_str"] for e in NSynth(root, **filters).examples} == expected


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"families": ["guitars"]}, "families: 'guitars' is not one of"),
        ({"families": 11}, "families: 11 is not one of"),
        ({"sources": "analog"}, "sources: 'analog' is not one of"),
        ({"pitch_range": (72, 60)}, r"pitch_range=\(72, 60\) must be \(low, high\)"),
    ],
)
def test_bad_filters_are_refused(fake_nsynth, filters, message):
    root, _ = fake_nsynth
    with pytest.raises(ValueError, match=message):
        NSynth(root, **filters)


def test_empty_selection_names_the_filters(fake_nsynth):
    root, _ = fake_nsynth
    with pytest.raises(ValueError, match=r"no notes .* match families='vocal', .*pitch_range=None.* \(of 5 notes\)"):
        NSynth(root, families="vocal")


def test_missing_root_says_how_to_get_nsynth(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*datasets/nsynth.*render_nsynth_mini"):
        NSynth(tmp_path / "nowhere")


def test_missing_split_folder_lists_the_splits_found(fake_nsynth):
    root, _ = fake_nsynth
    with pytest.raises(FileNotFoundError, match=r"nsynth-test does not exist .*\['nsynth-train'\].*render_nsynth_mini"):
        NSynth(root, "test")


def test_unknown_split_name(fake_nsynth):
    root, _ = fake_nsynth
    with pytest.raises(ValueError, match=r"split='validation' is not an NSynth split"):
        NSynth(root, "validation")


def test_missing_examples_json(fake_nsynth):
    root, _ = fake_nsynth
    (root / "nsynth-train" / "examples.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"examples.json is missing"):
        NSynth(root)


def test_corrupt_examples_json(fake_nsynth):
    root, _ = fake_nsynth
    (root / "nsynth-train" / "examples.json").write_text('{"bass_electronic_000-040-100": {"pitch": 4')
    with pytest.raises(ValueError, match=r"examples.json is corrupt"):
        NSynth(root)


def test_entry_without_a_needed_key(fake_nsynth):
    root, _ = fake_nsynth
    path = root / "nsynth-train" / "examples.json"
    examples = json.loads(path.read_text())
    del examples["flute_acoustic_001-072-025"]["pitch"]
    path.write_text(json.dumps(examples))
    with pytest.raises(ValueError, match=r"'flute_acoustic_001-072-025' lacks \['pitch'\]"):
        NSynth(root)


def test_missing_wav_is_skipped_with_a_warning_naming_it(fake_nsynth):
    root, _ = fake_nsynth
    (root / "nsynth-train" / "audio" / "flute_acoustic_001-072-025.wav").unlink()
    with pytest.warns(UserWarning, match=r"skipping 1 of 5 .*flute_acoustic_001-072-025\.wav"):
        notes = NSynth(root)
    assert len(notes) == 4
    assert "flute_acoustic_001-072-025" not in {e["note_str"] for e in notes.examples}


@pytest.mark.parametrize(
    ("data", "sr", "message"),
    [
        (note_wave(60, 50, 88200, 22050), 22050, r"sample rate 22050 \(expected 16000\)"),
        (np.stack([note_wave(60, 50)] * 2, axis=1), SR, r"channels 2 \(expected 1\)"),
        (note_wave(60, 50, 32000), SR, r"samples 32000 \(expected 64000\)"),
    ],
)
def test_wav_not_in_nsynth_format_is_an_error_naming_the_file(fake_nsynth, data, sr, message):
    root, _ = fake_nsynth
    sf.write(root / "nsynth-train" / "audio" / "guitar_acoustic_003-060-050.wav", data, sr)
    notes = NSynth(root)
    index = [e["note_str"] for e in notes.examples].index("guitar_acoustic_003-060-050")
    with pytest.raises(ValueError, match=rf"guitar_acoustic_003-060-050\.wav is not an NSynth note: {message}.*sox"):
        notes[index]


# ----------------------------------------------------------------------------- pitch_error_cents
@pytest.mark.parametrize(("cents", "pitch"), [(0, 69), (30, 69), (-40, 45), (0, 57), (1200, 57)])
def test_pitch_error_cents_measures_cents_of_a_sine(cents, pitch):
    x = synth.sine(midi_hz(pitch) * 2 ** (cents / 1200), 1.0, SR)
    assert pitch_error_cents(x, SR, pitch) == pytest.approx(cents, abs=10)


def test_pitch_error_cents_takes_arrays_at_other_rates():
    x = synth.sine(midi_hz(62), 1.0, 22050).numpy()[None]
    assert pitch_error_cents(x, 22050, 62) == pytest.approx(0, abs=10)


def test_pitch_error_cents_is_repeatable_and_leaves_the_global_generators_alone():
    x = synth.harmonic_tone(midi_hz(50), 1.0, SR)
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state()
    assert pitch_error_cents(x, SR, 50) == pitch_error_cents(x, SR, 50)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_pitch_error_cents_refuses_silence():
    with pytest.raises(ValueError, match=r"no frame of x is voiced"):
        pitch_error_cents(torch.zeros(SR), SR, 60)


# ----------------------------------------------------------------------------- NSynth-mini
@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return render_nsynth_mini(tmp_path_factory.mktemp("mini") / "nsm", size="tiny", seed=0)


def all_examples(root):
    return {s: json.loads((root / f"nsynth-{s}" / "examples.json").read_text()) for s in nsynth.SPLITS}


def test_mini_is_readable_by_nsynth(mini):
    examples = all_examples(mini)
    for split in nsynth.SPLITS:
        notes = NSynth(mini, split)
        assert len(notes) == len(examples[split]) > 0
        item = notes[len(notes) - 1]
        assert item["audio"].shape == (1, 64000) and item["audio"].dtype == torch.float32 and item["sr"] == SR
    assert sum(len(e) for e in examples.values()) == 2 * len(nsynth.INSTRUMENTS)


def test_mini_metadata_follows_nsynths_conventions(mini):
    entries = [e for split in all_examples(mini).values() for e in split.values()]
    for e in entries:
        family, source = NSYNTH_FAMILIES[e["instrument_family"]], NSYNTH_SOURCES[e["instrument_source"]]
        assert (e["instrument_family_str"], e["instrument_source_str"]) == (family, source)
        assert e["instrument_str"] == f"{family}_{source}_{e['instrument']:03d}"
        assert e["note_str"] == f"{e['instrument_str']}-{e['pitch']:03d}-{e['velocity']:03d}"
        low, high = nsynth.FAMILY_PITCHES[family]
        assert 24 <= low <= e["pitch"] <= high <= 84
        assert e["velocity"] in (25, 50, 75, 100, 127)
        assert (e["qualities"], e["qualities_str"], e["sample_rate"]) == ([0] * 10, [], SR)
    assert len({e["note"] for e in entries}) == len(entries)


def test_instrument_keys_follow_the_tables(mini):
    by_program = {i.program: i for i in nsynth.INSTRUMENTS}
    assert by_program[24].keys == list(range(40, 85))  # a guitar: the family's range, 40-84
    assert by_program[21].keys == list(range(40, 73))  # accordion: narrowed to 40-72
    assert 64 not in by_program[65].keys and len(by_program[65].keys) == 79 - 48  # alto sax: key 64 left out
    assert by_program[17].keys[0] == 36 and by_program[17].sounding_keys[0] == 48  # the 16-foot organ, an octave up
    assert by_program[24].sounding_keys == by_program[24].keys
    mini_keys = {(e["instrument"], e["pitch"]) for split in all_examples(mini).values() for e in split.values()}
    assert all(k in by_program[p].keys for p, k in mini_keys)


def test_mini_splits_by_instrument(mini):
    examples = all_examples(mini)
    instruments = {s: {e["instrument_str"] for e in ex.values()} for s, ex in examples.items()}
    assert not instruments["train"] & instruments["test"]
    assert not instruments["train"] & instruments["valid"]
    assert not instruments["valid"] & instruments["test"]
    families = {s: {e["instrument_family_str"] for e in ex.values()} for s, ex in examples.items()}
    sizes = {f: sum(i.family == f for i in nsynth.INSTRUMENTS) for f in NSYNTH_FAMILIES}
    assert families["train"] == set(NSYNTH_FAMILIES)
    assert families["test"] >= {f for f, n in sizes.items() if n >= 3}
    assert families["valid"] >= {f for f, n in sizes.items() if n >= 3}


def test_mini_notes_are_loud_and_unclipped(mini):
    peaks = [float(np.abs(sf.read(p)[0]).max()) for p in mini.glob("nsynth-*/audio/*.wav")]
    assert len(peaks) == 2 * len(nsynth.INSTRUMENTS)
    assert all(0.5 < peak <= 1.0 for peak in peaks)


def test_mini_notes_sound_their_pitch(mini):
    notes = NSynth(mini, "train", families=["bass", "brass", "guitar", "reed", "string", "vocal"])
    checked = {}
    for index, e in enumerate(notes.examples):
        if e["instrument_family_str"] not in checked:
            checked[e["instrument_family_str"]] = pitch_error_cents(notes[index]["audio"], SR, e["pitch"])
    assert len(checked) == 6
    assert all(abs(cents) <= 50 for cents in checked.values()), checked


def test_mini_is_deterministic_cached_and_rebuilt_when_corrupt(mini, tmp_path):
    again = render_nsynth_mini(tmp_path / "again", size="tiny", seed=0)
    wavs = sorted(p.relative_to(mini) for p in mini.glob("nsynth-*/audio/*.wav"))
    assert sorted(p.relative_to(again) for p in again.glob("nsynth-*/audio/*.wav")) == wavs
    for name in [*(f"nsynth-{split}/examples.json" for split in nsynth.SPLITS), *wavs]:
        assert (again / name).read_bytes() == (mini / name).read_bytes(), name

    mtimes = {p: p.stat().st_mtime_ns for p in again.rglob("*")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert render_nsynth_mini(tmp_path / "again", size="tiny", seed=0) == again
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*")} == mtimes

    (again / wavs[0]).unlink()
    with pytest.warns(UserWarning, match=r"rebuilding .*again: its files do not match"):
        render_nsynth_mini(tmp_path / "again", size="tiny", seed=0)
    assert (again / wavs[0]).read_bytes() == (mini / wavs[0]).read_bytes()


def test_mini_seed_changes_the_split(mini, tmp_path):
    other = render_nsynth_mini(tmp_path / "other", size=1, seed=1)  # one note per instrument is enough here
    seed_0, seed_1 = ({e["instrument_str"] for e in all_examples(root)["test"].values()} for root in (mini, other))
    assert len(seed_0) == len(seed_1) and seed_0 != seed_1


def test_nsynth_mini_class_caches_under_the_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    flutes = NSynthMini("train", size=1, families="flute")
    assert flutes.folder == tmp_path / "nsynth_mini-1-seed0" / "nsynth-train"
    assert {e["instrument_family_str"] for e in flutes.examples} == {"flute"}


@pytest.mark.parametrize("size", ["huge", 0, 2.5])
def test_unknown_size_is_refused(tmp_path, size):
    with pytest.raises(ValueError, match=rf"size={size!r}: use one of \['tiny', 'mini', 'full'\]"):
        render_nsynth_mini(tmp_path / "x", size=size)


def test_note_wavs_hold_the_bytes_audio_save_writes(tmp_path):
    """NSynth-mini writes its wavs itself, for speed: they must stay what audio.save (soundfile) would write."""
    on_steps = np.arange(-29000, 29000, 7, dtype=np.float32) / 32768
    x = np.concatenate(
        [
            np.random.default_rng(0).uniform(-0.9, 0.9, 20000).astype(np.float32),
            on_steps,  # exactly on a 16-bit step
            on_steps + np.float32(0.5 / 32768),  # half way between two steps
            np.nextafter(on_steps, np.float32(-1)),  # just below a step: rounds up to it, not down
            np.float32([0.9, -0.9, 0.0, 1e-10, -1e-10, 7.8e-4]),
        ]
    )
    nsynth._write_pcm16_wav(tmp_path / "fast.wav", x, SR)
    audio.save(tmp_path / "reference.wav", torch.from_numpy(x), SR)
    assert (tmp_path / "fast.wav").read_bytes() == (tmp_path / "reference.wav").read_bytes()


def test_silent_notes_are_skipped_with_a_warning(monkeypatch, tmp_path):
    render_note = nsynth.SoundfontSynth.render_note

    def silent_guitar(self, program, *args, **kwargs):
        x = render_note(self, program, *args, **kwargs)
        return np.zeros_like(x) if program == 24 else x

    monkeypatch.setattr(nsynth.SoundfontSynth, "render_note", silent_guitar)
    with pytest.warns(UserWarning, match=r"skipped guitar_acoustic_024-\d{3}-\d{3}, the soundfont rendered it silent"):
        root = render_nsynth_mini(tmp_path / "x", size=1)
    names = [n for ex in all_examples(root).values() for n in ex]
    assert len(names) == len(nsynth.INSTRUMENTS) - 1
    assert not any(n.startswith("guitar_acoustic_024") for n in names)
    assert not list(root.glob("nsynth-*/audio/guitar_acoustic_024-*.wav"))
