"""Tests of coursekit.data.music: the corpus pieces, their notes and MIDI, the rendered recordings."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest
import torch
from music21 import corpus, note, stream

from coursekit.data import music
from coursekit.data.music import MusicRecordings, render_music, score_to_midi, usable_score

SR = 16000


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One chorale and one folk tune, rendered once for the module."""
    return render_music(root=tmp_path_factory.mktemp("music"), n_pieces=2, seed=0)


def _seconds_of_music(piece: str, tempo_bpm: float) -> float:
    """From the first note's start to the last note's end, read from music21 directly."""
    notes = [n for n in corpus.parse(piece).flatten().notes if not n.duration.isGrace]
    first = min(float(n.offset) for n in notes)
    last = max(float(n.offset + n.quarterLength) for n in notes)
    return (last - first) * 60 / tempo_bpm


def test_corpus_holds_both_styles():
    chorales, folk = music.corpus_pieces("chorale"), music.corpus_pieces("folk")
    assert len(chorales) == len(set(chorales)) == 350 and "bach/bwv269" in chorales
    assert len(folk) == 1059 and folk == sorted(folk) and all(p.startswith("ryansMammoth/") for p in folk)


def test_usable_score_keeps_four_part_chorales_and_names_what_it_skips():
    score, why = usable_score("chorale", "bach/bwv269")
    assert len(score.parts) == 4 and why == ""
    assert usable_score("chorale", "bach/bwv8.6") == (None, "5 parts, not 4")
    with pytest.warns(UserWarning, match=r"skipping bach/no-such-piece: music21 could not parse it"):
        score, why = usable_score("chorale", "bach/no-such-piece")
    assert score is None and why.startswith("parse error")


def test_score_to_midi_times_programs_and_parts():
    score = stream.Score()
    for pitches in ([72, 74], [60, 62], [48, 50]):
        part = stream.Part()
        part.append(note.Rest(quarterLength=1))
        part.append([note.Note(p, quarterLength=q) for p, q in zip(pitches, (1, 2), strict=True)])
        score.insert(0, part)
    midi = score_to_midi(score, (40, 42), tempo_bpm=120)
    assert [i.program for i in midi.instruments] == [40, 42, 40]
    assert [(n.pitch, n.start, n.end) for n in midi.instruments[1].notes] == [(60, 0.0, 0.5), (62, 0.5, 1.5)]
    with pytest.raises(ValueError, match=r"give at least one program and a positive tempo"):
        score_to_midi(score, (), tempo_bpm=120)


def test_recordings_are_the_pieces_at_the_right_length(folder):
    metadata = json.loads((folder / "metadata.json").read_text())
    records = metadata["recordings"]
    assert [r["style_str"] for r in records] == ["chorale", "folk"] and metadata["sr"] == SR
    for r in records:
        programs = [int(p) for p in r["programs"].split(",")]
        assert tuple(programs) == music.ENSEMBLES[r["style_str"]][r["ensemble"]]
        expected = round((_seconds_of_music(r["piece"], r["tempo_bpm"]) + music.RELEASE_S) * SR)
        assert abs(r["duration"] * SR - expected) <= 1


def test_items_are_loud_normalised_audio_from_the_first_note(folder):
    recordings = MusicRecordings(root=folder.parent, n_pieces=2, seed=0)
    assert len(recordings) == 2
    for item in recordings:
        x = item["audio"]
        assert x.dtype == torch.float32 and x.shape == (1, round(item["duration"] * SR)) and item["sr"] == SR
        assert abs(float(x.abs().max()) - music.PEAK) < 1e-3
        rms = x[0, : len(x[0]) // 2].pow(2).mean().sqrt()
        assert rms > 0.02, f"{item['piece']} is nearly silent"
        assert x[0, : SR // 10].abs().max() > 0.01  # music starts at time 0
        assert {"piece", "style", "style_str", "ensemble", "programs", "tempo_bpm"} <= item.keys()


def _written_chroma(piece: str, tempo_bpm: float, frames: int, hop_length: int) -> np.ndarray:
    """0/1 ``[12, frames]``: the pitch classes the score has sounding in each audio frame."""
    notes = [n for n in corpus.parse(piece).flatten().notes if not n.duration.isGrace]
    first, frames_per_quarter = min(float(n.offset) for n in notes), 60 / tempo_bpm * SR / hop_length
    chroma = np.zeros((12, frames))
    for n in notes:
        start = int((float(n.offset) - first) * frames_per_quarter)
        end = int((float(n.offset + n.quarterLength) - first) * frames_per_quarter)
        for p in n.pitches:
            chroma[p.midi % 12, start:end] = 1
    return chroma


def test_recordings_play_the_scores_pitch_classes_in_time(folder):
    """Frame by frame, the audio's chroma matches the score's, and clearly better than any transposition."""
    for item in MusicRecordings(root=folder.parent, n_pieces=2, seed=0):
        heard = librosa.feature.chroma_stft(y=item["audio"][0].numpy(), sr=SR, n_fft=4096, hop_length=512)
        written = _written_chroma(item["piece"], item["tempo_bpm"], heard.shape[1], 512)
        sounding = written.any(axis=0)
        similarity = []
        for shift in range(12):
            w = np.roll(written, shift, axis=0)[:, sounding]
            cosine = (
                (w * heard[:, sounding]).sum(0) / np.linalg.norm(w, axis=0) / np.linalg.norm(heard[:, sounding], axis=0)
            )
            similarity.append(float(cosine.mean()))
        assert similarity[0] > 0.6 and similarity[0] > max(similarity[1:]) + 0.1, (item["piece"], similarity)


def test_rendering_is_deterministic(folder, tmp_path):
    again = render_music(root=tmp_path, n_pieces=2, seed=0)
    assert (again / "metadata.json").read_text() == (folder / "metadata.json").read_text()
    for wav in (folder / "audio").iterdir():
        assert (again / "audio" / wav.name).read_bytes() == wav.read_bytes()
    other = json.loads((render_music(root=tmp_path, n_pieces=2, seed=1) / "metadata.json").read_text())
    mine = json.loads((folder / "metadata.json").read_text())
    assert [r["piece"] for r in other["recordings"]] != [r["piece"] for r in mine["recordings"]]


def test_cache_is_reused_and_a_missing_file_is_rebuilt(tmp_path, monkeypatch):
    built = render_music(root=tmp_path, n_pieces=1, seed=0)
    wav = next((built / "audio").iterdir())
    original = wav.read_bytes()

    def fail(*args):
        raise AssertionError("the cache should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(music, "SoundfontSynth", fail)
        assert render_music(root=tmp_path, n_pieces=1, seed=0) == built
    wav.unlink()
    with pytest.warns(UserWarning, match=r"rebuilding .*1pieces-seed0-16000hz: its files do not match"):
        render_music(root=tmp_path, n_pieces=1, seed=0)
    assert wav.read_bytes() == original


def test_styles_filter_and_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    folk = MusicRecordings(n_pieces=2, styles="folk")
    assert len(folk) == 1 and folk[0]["style_str"] == "folk" and folk[0]["style"] == 1
    assert (tmp_path / "music" / "2pieces-seed0-16000hz" / "MANIFEST.json").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_pieces": 0}, r"n_pieces=0"), ({"seed": -1}, r"seed=-1"), ({"styles": ("jazz",)}, r"style='jazz'")],
)
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        MusicRecordings(root=tmp_path, **kwargs)


def test_fast_mode_renders_four_pieces(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_FAST", "1")
    records = json.loads((render_music(root=tmp_path) / "metadata.json").read_text())["recordings"]
    assert [r["style_str"] for r in records] == ["chorale", "chorale", "folk", "folk"]
    assert np.all(np.array([r["duration"] for r in records]) > 5)
