"""coursekit.data.loops: patterns, the beat grid, seamless rendering, the cached dataset."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import librosa
import numpy as np
import pytest
import scipy.signal as ss
import torch
from torch.utils.data import DataLoader

from coursekit.data import loops
from coursekit.data.soundfont import NoteEvent, SoundfontSynth

SR = loops.SR
PCM16_STEP = 1 / 32768
TOLERANCE_S = 0.020  # how far a detected onset may sit from its grid position
DRUMS = ("drums",)


@pytest.fixture(scope="module")
def synth():
    return SoundfontSynth(SR)


def steps_of(pattern: str, chars: str = "xo") -> np.ndarray:
    return np.array([i for i, c in enumerate(pattern) if c in chars], dtype=int)


def middle_pass_onsets(x: np.ndarray, below_hz: float | None = None) -> np.ndarray:
    """Onset times (s) inside the middle of three repetitions of the loop ``x``, relative to its start.

    Repeating the loop gives the detector the context it cannot have at time 0. With ``below_hz``
    the repetitions are low-passed first (filtering the repeats, not the loop, avoids edge effects).
    Hop 64 and n_fft 512 (4 ms frames, 32 ms windows): librosa's defaults (32 ms frames, 128 ms
    windows at 16 kHz) blur onsets by more than the tolerance.
    No backtracking: an onset is then the peak of the spectral flux, which for these drum samples
    came 2-12 ms after the note-on (the steepest part of the attack) over 30 loops; backtracking
    moves it to the envelope's minimum before, which between dense hats landed up to 14 ms early.
    Both fit 20 ms; peaks err in one direction only and need no second search.
    """
    n, y = len(x), np.tile(x, 3)
    y = y if below_hz is None else band(y, 0, below_hz)
    envelope = librosa.onset.onset_strength(y=y, sr=SR, hop_length=64, n_fft=512, n_mels=32)
    times = librosa.onset.onset_detect(onset_envelope=envelope, sr=SR, hop_length=64, units="time") - n / SR
    return times[(times > -TOLERANCE_S) & (times < n / SR - TOLERANCE_S)]


def distance_to_nearest(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return np.abs(times[:, None] - grid[None, :]).min(axis=1)


def band(x: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """Zero-phase Butterworth band-pass (``low_hz == 0``: low-pass), so nothing is delayed."""
    kind, edges = ("lowpass", high_hz) if low_hz == 0 else ("bandpass", [low_hz, high_hz])
    return ss.sosfiltfilt(ss.butter(4, edges, btype=kind, fs=SR, output="sos"), x)


def step_energy(y: np.ndarray, starts: np.ndarray, window_s: float, before: bool = False) -> np.ndarray:
    """Energy of ``y`` in the ``window_s`` after (or before) each start sample; ``y`` is 2 loops long."""
    n = round(window_s * SR)
    return np.array([np.sum(y[s - n : s] ** 2) if before else np.sum(y[s : s + n] ** 2) for s in starts])


# ----------------------------------------------------------------------------- beat grid
def test_beat_grid_at_120_bpm_is_every_half_second():
    grid = loops.beat_grid(120.0, bars=1)
    np.testing.assert_allclose(grid.times, [0.0, 0.5, 1.0, 1.5])
    np.testing.assert_array_equal(grid.samples, [0, 8000, 16000, 24000])
    assert grid.samples.dtype == np.int64


def test_beat_grid_sixteenths_over_two_bars():
    grid = loops.beat_grid(125.0, bars=2, sr=16000, steps_per_beat=4)  # a sixteenth lasts 0.12 s
    assert grid.times.shape == (32,)
    np.testing.assert_allclose(grid.times, 0.12 * np.arange(32))
    np.testing.assert_array_equal(grid.samples, 1920 * np.arange(32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bpm": 120.0, "bars": 0}, r"bars=0 must be a positive whole number"),
        ({"bpm": 120.0, "bars": 1.5}, r"bars=1\.5 must be a positive whole number"),
        ({"bpm": 0.0, "bars": 1}, r"bpm=0\.0: the tempo must be a positive"),
        ({"bpm": 120.0, "bars": 1, "steps_per_beat": 0}, r"steps_per_beat=0 must be a positive"),
    ],
)
def test_beat_grid_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        loops.beat_grid(**kwargs)


# ----------------------------------------------------------------------------- patterns
def test_patterns_follow_the_techno_template():
    for seed in range(40):
        spec = loops.draw_loop(seed, bars=2)
        n_steps = 32
        assert all(len(p) == n_steps for p in (spec.kick, spec.hat, spec.clap, spec.bass, spec.stab))
        assert set(spec.kick) <= set("x.") and set(spec.clap) <= set("x.") and set(spec.hat) <= set("xo.")
        assert set(range(0, n_steps, 4)) <= set(steps_of(spec.kick))  # four on the floor
        assert {4, 12, 20, 28} <= set(steps_of(spec.clap))  # beats 2 and 4 of each bar
        assert set(range(2, n_steps, 4)) <= set(steps_of(spec.hat))  # a hat on every off-beat
        assert set(spec.bass) - {"."} <= set("01234567") and spec.bass != "." * n_steps
        assert spec.clap_note in (loops.CLAP, loops.SNARE) and spec.bass_program in loops.BASS_PROGRAMS
        assert spec.key == f"{loops.NOTE_NAMES[spec.root % 12]} minor" and 28 <= spec.root <= 35


def test_loop_length_is_exact_for_its_tempo_and_bars():
    for seed, bars in [(0, 1), (1, 2), (2, 3), (3, 4)]:
        spec = loops.draw_loop(seed, bars=bars)
        assert spec.n_samples == round(bars * 4 * 60 / spec.bpm * SR)
        assert spec.bars == bars and len(spec.kick) == 16 * bars


def test_tempo_stays_in_the_range_and_rounds_to_a_tenth():
    bpms = np.array([loops.draw_loop(seed).bpm for seed in range(200)])
    assert bpms.min() >= 120.0 and bpms.max() <= 135.0
    assert bpms.max() - bpms.min() > 10  # the whole range is used, not one tempo
    np.testing.assert_allclose(bpms * 10, np.round(bpms * 10), atol=1e-9)
    narrow = [loops.draw_loop(seed, bpm_range=(126.0, 127.0)).bpm for seed in range(50)]
    assert min(narrow) >= 126.0 and max(narrow) <= 127.0
    assert {loops.draw_loop(seed, bpm_range=(130.0, 130.0)).bpm for seed in range(5)} == {130.0}


def test_draw_loop_is_deterministic_and_seeds_differ():
    assert loops.draw_loop(7) == loops.draw_loop(7)
    specs = [loops.draw_loop(seed) for seed in range(20)]
    assert len({(s.bpm, s.kick, s.hat, s.clap, s.bass, s.stab) for s in specs}) == 20


def test_parts_and_stab_probability_decide_what_plays():
    for seed in range(10):
        drums = loops.draw_loop(seed, parts=DRUMS)
        assert drums.parts == "drums" and drums.bass == drums.stab == "." * 32
        assert drums.bass_program == drums.stab_program == -1 and drums.stab_chord == ""
        bass = loops.draw_loop(seed, parts=("bass",))
        assert bass.parts == "bass" and bass.kick == bass.hat == bass.clap == "." * 32 and bass.clap_note == -1
        full = loops.draw_loop(seed, stab_prob=1.0)
        assert full.parts == "drums+bass+stab" and "x" in full.stab and full.stab_program in loops.STAB_PROGRAMS
        assert loops.draw_loop(seed, stab_prob=0.0).parts == "drums+bass"
    with_stab = sum("stab" in loops.draw_loop(seed).parts for seed in range(200))
    assert 70 <= with_stab <= 130  # stab_prob=0.5


def test_loop_events_follow_the_patterns():
    spec = loops.draw_loop(5, bars=1, stab_prob=1.0)
    step_s = 60 / spec.bpm / 4
    events = loops.loop_events(spec)
    kicks = sorted(e.start for e in events if e.drum and e.pitch == loops.KICK)
    np.testing.assert_allclose(kicks, steps_of(spec.kick) * step_s)
    chord_size = 4 if spec.stab_chord == "m7" else 3
    stabs = [e for e in events if not e.drum and e.program == spec.stab_program]
    assert len(stabs) == chord_size * len(steps_of(spec.stab, "x"))
    bass = sorted((e.start, e.pitch) for e in events if not e.drum and e.program == spec.bass_program)
    expected = [(i * step_s, spec.root + loops.MINOR_SCALE[int(c)]) for i, c in enumerate(spec.bass) if c != "."]
    assert [p for _, p in bass] == [p for _, p in expected]
    np.testing.assert_allclose([t for t, _ in bass], [t for t, _ in expected])


# ----------------------------------------------------------------------------- rendering
def test_render_loop_has_the_exact_length_and_a_peak_of_0_9(synth):
    for seed, bars in [(0, 1), (1, 2)]:
        spec = loops.draw_loop(seed, bars=bars)
        x = loops.render_loop(spec, synth)
        assert x.dtype == np.float32 and x.shape == (spec.n_samples,)
        assert np.abs(x).max() == pytest.approx(loops.PEAK, abs=1e-6)
        assert np.sqrt(np.mean(x**2)) > 0.05  # not a lone click: the loop sounds throughout


def test_render_loop_is_one_period_of_the_pattern_played_on_and_on(synth):
    """The loop equals a stretch from the middle of a long performance, so it repeats seamlessly."""
    spec = next(
        s for s in (loops.draw_loop(seed, bars=1, stab_prob=1.0) for seed in range(100)) if "o" in s.hat
    )  # open hats and stab chords ring longest
    n, n_passes = spec.n_samples, 6
    performance = [
        replace(e, start=e.start + k * n / SR, end=e.end + k * n / SR)
        for k in range(n_passes)
        for e in loops.loop_events(spec)
    ]
    long_take = SoundfontSynth(SR).render_events(performance, n_passes * n / SR)[-2 * n :]
    loop = loops.render_loop(spec, synth)
    scale = loops.PEAK / np.abs(long_take[n:]).max()
    np.testing.assert_allclose(loop, long_take[n:] * scale, atol=1e-4)
    np.testing.assert_allclose(np.tile(loop, 2), long_take * scale, atol=1e-4)


def test_render_loop_does_not_depend_on_what_the_synth_played_before():
    spec = loops.draw_loop(4, bars=1)
    fresh = loops.render_loop(spec, SoundfontSynth(SR))
    used = SoundfontSynth(SR)
    used.render_events([NoteEvent(0.0, 1.0, 50, 127, 90)], 0.5)  # cut off while still sounding
    np.testing.assert_array_equal(loops.render_loop(spec, used), fresh)


def test_render_loop_refuses_a_synth_at_another_rate():
    with pytest.raises(ValueError, match=r"synth runs at 22050 Hz but loops are 16000 Hz"):
        loops.render_loop(loops.draw_loop(0), SoundfontSynth(22050))


# ----------------------------------------------------------------------------- audio agrees with the grid
def test_drum_onsets_land_on_the_sixteenth_grid_and_on_every_beat(synth):
    for seed in range(12):
        spec = loops.draw_loop(seed, bars=1, parts=DRUMS)
        onsets = middle_pass_onsets(loops.render_loop(spec, synth))
        sixteenths = loops.beat_grid(spec.bpm, 1, steps_per_beat=4).times
        grid = np.append(sixteenths, spec.n_samples / SR)  # the next pass's first step
        beats = loops.beat_grid(spec.bpm, 1).times
        assert len(onsets) >= 4
        assert distance_to_nearest(onsets, grid).max() < TOLERANCE_S, f"seed {seed}: an onset off the grid"
        assert distance_to_nearest(beats, onsets).max() < TOLERANCE_S, f"seed {seed}: a beat without an onset"


def test_kicks_are_found_on_every_beat_below_150_hz(synth):
    for seed in range(12):
        spec = loops.draw_loop(seed, bars=1, parts=DRUMS)
        onsets = middle_pass_onsets(loops.render_loop(spec, synth), below_hz=150)
        kicks = loops.beat_grid(spec.bpm, 1, steps_per_beat=4).times[steps_of(spec.kick)]
        assert distance_to_nearest(kicks, onsets).max() < TOLERANCE_S, f"seed {seed}: a kick was not found"


def test_drum_patterns_agree_with_the_energy_in_their_bands(synth):
    """Kick steps are loudest below 150 Hz, clap steps at 0.8-2.5 kHz, hat hits raise 5-8 kHz."""
    hat_styles = set()
    for seed in range(24):
        spec = loops.draw_loop(seed, bars=2, parts=DRUMS)
        x = np.tile(loops.render_loop(spec, synth), 2)  # a second pass gives each step its "before"
        starts = loops.beat_grid(spec.bpm, 2, steps_per_beat=4).samples + spec.n_samples
        kick = np.array([c == "x" for c in spec.kick])
        low = step_energy(band(x, 0, 150), starts, 0.03)
        assert low[kick].min() > 1.5 * low[~kick].max(), f"seed {seed}: kick {spec.kick}"
        mid = step_energy(band(x, 800, 2500), starts, 0.03)
        beats = np.arange(0, 32, 4)  # kick and the same hat on each: only the clap or snare differs
        clap = np.array([spec.clap[i] == "x" for i in beats])
        assert mid[beats][clap].min() > 1.5 * mid[beats][~clap].max(), f"seed {seed}: clap {spec.clap}"
        high = band(x, 5000, 7900)
        isolated = [i for i in steps_of(spec.hat) if spec.hat[i - 1] == "."]  # a hat after a step without one
        after, before = step_energy(high, starts[isolated], 0.02), step_energy(high, starts[isolated], 0.02, True)
        assert (after > 1.5 * before).all(), f"seed {seed}: hat {spec.hat}"
        hat_styles.add(spec.hat[:4])
    assert {"..o.", "..x.", "x.x."} <= hat_styles  # open and closed hats were both checked


# ----------------------------------------------------------------------------- the cached dataset
def test_render_loops_writes_wavs_and_metadata(tmp_path):
    root = loops.render_loops(tmp_path / "loops", n_loops=3, bars=1, seed=0)
    records = json.loads((root / loops.METADATA).read_text())
    assert [r["file"] for r in records] == ["loop_00000.wav", "loop_00001.wav", "loop_00002.wav"]
    assert sorted(p.name for p in root.glob("*.wav")) == [r["file"] for r in records]
    for record in records:
        assert record == {"file": record["file"], **asdict(loops.draw_loop(record["pattern_seed"], bars=1))}


def test_items_hold_the_loop_and_its_metadata(tmp_path, synth):
    dataset = loops.TechnoLoops(tmp_path / "loops", n_loops=3, bars=1, seed=0)
    assert len(dataset) == 3
    for index in range(3):
        item = dataset[index]
        spec = loops.draw_loop(item["pattern_seed"], bars=1)
        assert item["index"] == index and item["sr"] == SR and item["file"] == f"loop_{index:05d}.wav"
        assert {k: item[k] for k in asdict(spec)} == asdict(spec)
        assert isinstance(item["bpm"], float) and isinstance(item["bars"], int) and isinstance(item["kick"], str)
        x = item["audio"]
        assert x.dtype == torch.float32 and x.shape == (1, spec.n_samples)
        torch.testing.assert_close(x[0], torch.from_numpy(loops.render_loop(spec, synth)), atol=PCM16_STEP, rtol=0)


def test_length_repeats_each_loop_so_that_batches_collate(tmp_path):
    length = 40000  # longer than any one-bar loop (at most 32000 samples at 120 BPM)
    dataset = loops.TechnoLoops(tmp_path / "loops", n_loops=4, bars=1, seed=1, length=length)
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["audio"].shape == (4, 1, length)
    assert batch["bpm"].dtype == torch.float64 and len(batch["kick"]) == 4
    for x, n in zip(batch["audio"], batch["n_samples"].tolist(), strict=True):
        torch.testing.assert_close(x[0, n:], x[0, : length - n])  # the second pass repeats the first
    short = loops.TechnoLoops(tmp_path / "loops", n_loops=4, bars=1, seed=1, length=1000)[0]["audio"]
    torch.testing.assert_close(short, dataset[0]["audio"][:, :1000])


def test_same_seed_gives_identical_files_and_other_seeds_differ(tmp_path):
    a = loops.render_loops(tmp_path / "a", n_loops=3, bars=1, seed=3)
    b = loops.render_loops(tmp_path / "b", n_loops=3, bars=1, seed=3)
    c = loops.render_loops(tmp_path / "c", n_loops=3, bars=1, seed=4)
    for name in ["loop_00000.wav", "loop_00002.wav", loops.METADATA]:
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).read_bytes() != (c / name).read_bytes()


def test_the_default_folder_is_under_coursekit_data(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    dataset = loops.TechnoLoops(n_loops=2, bars=1, seed=5)
    assert dataset.root == tmp_path / "techno_loops_2x1bar_seed5"
    assert (dataset.root / "MANIFEST.json").exists() and len(dataset) == 2


def test_a_complete_cache_is_reused_without_rendering(tmp_path, monkeypatch):
    root = loops.render_loops(tmp_path / "loops", n_loops=2, bars=1)
    before = {p.name: p.stat().st_mtime_ns for p in root.iterdir()}

    def no_rendering(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(loops, "render_loop", no_rendering)
    assert loops.TechnoLoops(tmp_path / "loops", n_loops=2, bars=1).root == root
    assert {p.name: p.stat().st_mtime_ns for p in root.iterdir()} == before


def test_a_truncated_wav_is_rebuilt_with_a_warning(tmp_path):
    root = loops.render_loops(tmp_path / "loops", n_loops=2, bars=1)
    good = (root / "loop_00001.wav").read_bytes()
    (root / "loop_00001.wav").write_bytes(good[:1000])
    with pytest.warns(UserWarning, match=r"rebuilding .*loops: its files do not match"):
        loops.render_loops(tmp_path / "loops", n_loops=2, bars=1)
    assert (root / "loop_00001.wav").read_bytes() == good


def test_other_arguments_rebuild_the_folder_with_a_warning(tmp_path):
    loops.render_loops(tmp_path / "loops", n_loops=2, bars=1)
    with pytest.warns(UserWarning, match=r"built with different parameters"):
        root = loops.render_loops(tmp_path / "loops", n_loops=2, bars=2)
    assert all(r["bars"] == 2 for r in json.loads((root / loops.METADATA).read_text()))
    assert not [p for p in tmp_path.iterdir() if p.name != "loops"]  # no temporary folder left


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_loops": 0}, r"n_loops=0 must be a positive whole number: ask for at least one loop"),
        ({"bars": 0}, r"bars=0 must be a positive whole number: a loop is a whole number of 4/4 bars"),
        ({"bars": True}, r"bars=True must be a positive whole number"),
        ({"bpm_range": (110.0, 220.0)}, r"bpm_range=\(110\.0, 220\.0\): give \(low, high\) with 60 <= low"),
        ({"bpm_range": (130.0, 125.0)}, r"bpm_range=\(130\.0, 125\.0\)"),
        ({"parts": ("stab",)}, r"parts=\('stab',\): .* including 'drums' or 'bass'"),
        ({"parts": ("drums", "vocals")}, r"parts=\('drums', 'vocals'\): name some of"),
        ({"parts": "drums"}, r"parts='drums': name some of .* in a tuple"),
        ({"stab_prob": 1.5}, r"stab_prob=1\.5: a probability must lie in \[0, 1\]"),
        ({"seed": -1}, r"seed=-1: use a non-negative integer"),
        ({"length": 0}, r"length=0 must be a positive whole number: give a number of samples"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        loops.TechnoLoops(tmp_path / "loops", **{"n_loops": 2, "bars": 1, **kwargs})
    assert list(tmp_path.iterdir()) == []
