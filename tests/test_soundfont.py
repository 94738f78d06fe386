"""coursekit.data.soundfont: notes, events and MIDI rendered through the GM soundfont."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from coursekit.data.soundfont import NoteEvent, SoundfontSynth, soundfont_path
from coursekit.metrics import pitch_error_cents

SR = 16000
PIANO, FLUTE, TRUMPET, CELLO = 0, 73, 56, 42  # 0-based General MIDI programs


@pytest.fixture
def sfs() -> SoundfontSynth:
    """A fresh synth (50 ms to load), so that no test hears what another one played."""
    return SoundfontSynth(SR)


def rms(x: np.ndarray, start: float, end: float) -> float:
    return float(np.sqrt(np.mean(x[round(start * SR) : round(end * SR)] ** 2)))


def centroid_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float((spectrum * np.fft.rfftfreq(len(x), 1 / SR)).sum() / spectrum.sum())


def test_the_soundfont_ships_with_pretty_midi():
    path = soundfont_path()
    assert path.name == "TimGM6mb.sf2" and path.parent.name == "pretty_midi"
    assert path.stat().st_size > 5_000_000


def test_presets_carry_general_midi_names(sfs):
    assert "piano" in sfs.preset_name(PIANO).lower()
    assert "flute" in sfs.preset_name(FLUTE).lower()
    assert "trumpet" in sfs.preset_name(TRUMPET).lower()


@pytest.mark.parametrize(("duration", "n_samples"), [(4.0, 64000), (0.5, 8000), (1.00003, 16000)])
def test_note_length_is_duration_times_sr(sfs, duration, n_samples):
    x = sfs.render_note(FLUTE, 69, 100, hold=min(0.3, duration), duration=duration)
    assert x.shape == (n_samples,) and x.dtype == np.float32


def test_note_sounds_while_held_and_decays_after_release(sfs):
    x = sfs.render_note(FLUTE, 69, 100, hold=1.0, duration=2.0)
    held = rms(x, 0.3, 0.9)
    assert held > 0.05
    assert rms(x, 1.2, 1.3) < held / 10  # the release has begun
    assert rms(x, 1.9, 2.0) < held / 1000  # and ended
    assert np.all(np.isfinite(x)) and np.abs(x).max() < 1.0


def test_sustained_note_holds_its_level(sfs):
    x = sfs.render_note(FLUTE, 69, 100, hold=3.0, duration=4.0)
    levels = [rms(x, t, t + 0.5) for t in (0.5, 1.5, 2.4)]
    assert max(levels) < 2 * min(levels)


@pytest.mark.parametrize(("program", "pitch"), [(FLUTE, 69), (TRUMPET, 60), (CELLO, 48), (PIANO, 72)])
def test_rendered_note_sounds_its_pitch(sfs, peak_hz, program, pitch):
    x = sfs.render_note(program, pitch, 100)
    assert abs(pitch_error_cents(x, SR, pitch)) < 50
    if program == FLUTE:  # a flute's strongest partial is its fundamental: check it without CREPE too
        assert peak_hz(x[SR // 2 : 2 * SR], SR) == pytest.approx(440.0, rel=0.01)


def test_louder_velocity_gives_a_louder_note(sfs):
    peaks = [np.abs(sfs.render_note(FLUTE, 69, velocity)).max() for velocity in (25, 64, 127)]
    assert peaks[0] < peaks[1] < peaks[2]


def test_a_render_does_not_depend_on_the_one_before(sfs):
    first = SoundfontSynth(SR).render_note(PIANO, 60, 100)
    sfs.render_note(TRUMPET, 40, 127, hold=4.0)  # cut off while still sounding
    np.testing.assert_allclose(sfs.render_note(PIANO, 60, 100), first, atol=1e-6, rtol=0)


def test_events_mix_like_separate_renders():
    a = NoteEvent(0.0, 1.0, 60, 100, PIANO)
    b = NoteEvent(0.5, 1.5, 67, 90, FLUTE)
    mixed, only_a, only_b = (SoundfontSynth(SR).render_events(events, 2.0) for events in ([b, a], [a], [b]))
    np.testing.assert_allclose(mixed, only_a + only_b, atol=1e-5)
    assert rms(only_b, 0.0, 0.5) == 0.0 and rms(only_b, 0.5, 1.5) > 0.01


def test_drum_events_play_the_drum_kit(sfs):
    kick = sfs.render_events([NoteEvent(0.0, 0.2, 36, 120, drum=True)], 1.0)
    hat = sfs.render_events([NoteEvent(0.0, 0.2, 42, 120, drum=True)], 1.0)
    piano = sfs.render_events([NoteEvent(0.0, 0.2, 36, 120, PIANO)], 1.0)
    assert np.abs(kick).max() > 0.1 and np.abs(hat).max() > 0.01
    assert centroid_hz(hat) > 1.5 * centroid_hz(kick)  # a closed hat is brighter than a kick
    assert abs(np.corrcoef(kick, piano)[0, 1]) < 0.5  # key 36 on the drum channel is not a piano C2
    assert sfs.preset_name(0, drum=True)


def test_more_than_fifteen_programs_at_once_is_an_error(sfs):
    events = [NoteEvent(0.0, 0.1, 60, 100, program) for program in range(16)]
    with pytest.raises(ValueError, match=r"16 programs play at once, but General MIDI has 15 melodic channels"):
        sfs.render_events(events, 0.5)
    assert sfs.render_events(events[:15], 0.5).shape == (8000,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pitch": 128}, r"pitch=128 is not a MIDI key"),
        ({"pitch": -1}, r"pitch=-1 is not a MIDI key"),
        ({"velocity": 0}, r"velocity=0 is out of range"),
        ({"velocity": 128}, r"velocity=128 is out of range"),
        ({"program": 128}, r"program=128 is not a General MIDI program"),
        ({"hold": 5.0}, r"hold=5.0 s must be positive and at most duration=4.0 s"),
        ({"hold": 0.0}, r"hold=0.0 s must be positive"),
    ],
)
def test_bad_note_arguments_are_refused(sfs, kwargs, message):
    note = {"program": PIANO, "pitch": 60, "velocity": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        sfs.render_note(**note)


def test_bad_event_is_refused(sfs):
    with pytest.raises(ValueError, match=r"velocity=200 is out of range"):
        sfs.render_events([NoteEvent(0.0, 0.5, 60, 200, PIANO)], 1.0)


def test_low_sample_rate_is_refused():
    with pytest.raises(ValueError, match=r"sr=2000: use a whole number of Hz of at least 3000"):
        SoundfontSynth(sr=2000)


def test_render_midi_plays_each_note_at_its_time(sfs):
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=PIANO)
    piano.notes = [pretty_midi.Note(100, 60, 0.5, 1.0), pretty_midi.Note(100, 67, 1.5, 2.0)]
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes = [pretty_midi.Note(110, 36, 2.5, 2.6)]
    midi.instruments = [piano, drums]
    x = SoundfontSynth(SR).render_midi(midi)
    assert x.shape == (round(3.6 * SR),)  # the last note's end plus 1 s
    assert rms(x, 0.0, 0.49) == 0.0  # nothing before the first note
    assert rms(x, 0.5, 1.0) > 0.01 and rms(x, 1.5, 2.0) > 0.01
    expected = SoundfontSynth(SR).render_events(
        [
            NoteEvent(0.5, 1.0, 60, 100, PIANO),
            NoteEvent(1.5, 2.0, 67, 100, PIANO),
            NoteEvent(2.5, 2.6, 36, 110, 0, True),
        ],
        3.6,
    )
    np.testing.assert_allclose(x, expected, atol=1e-6)
    assert sfs.render_midi(midi, duration=1.0).shape == (SR,)
