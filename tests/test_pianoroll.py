"""Tests of coursekit.data.pianoroll: the grid, the hands, the round trip to MIDI, the cached dataset."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from music21 import corpus, note, stream

from coursekit.data import pianoroll
from coursekit.data.pianoroll import N_COLUMNS, PianoRolls, pianoroll_to_midi, score_to_pianoroll

LOW = 34  # lowest pitch of each hand, as the representation is specified
HAND = 51  # columns per hand


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A cache of two pieces per style, built once for the module."""
    folder = tmp_path_factory.mktemp("pianorolls")
    PianoRolls(root=folder, max_pieces=2)
    return folder


@pytest.fixture(scope="module")
def rolls(root):
    return PianoRolls(root=root, max_pieces=2, transpose=4, seed=3)


def _expected_roll(score) -> tuple[np.ndarray, np.ndarray]:
    """The two-hand roll of an on-grid four-part score, from music21's own tie merging."""
    merged = score.stripTies()
    pickup = float(merged.parts[0].getElementsByClass("Measure")[0].paddingLeft)
    steps = int(round((pickup + float(merged.highestTime)) * 4))
    roll, onsets = np.zeros((steps, N_COLUMNS)), np.zeros((steps, N_COLUMNS))
    for i, part in enumerate(merged.parts):
        for n in part.flatten().notes:
            start = int(round((float(n.offset) + pickup) * 4))
            end = start + int(round(float(n.quarterLength) * 4))
            column = (i // 2) * HAND + n.pitch.midi - LOW
            roll[start:end, column] = 1
            onsets[start, column] = 1
    return roll, onsets


def _midi_to_roll(midi, steps: int, tempo_bpm: float) -> tuple[np.ndarray, np.ndarray]:
    """Read a two-instrument MIDI back onto the grid (independent of the code under test)."""
    step = 60 / tempo_bpm / 4
    roll, onsets = np.zeros((steps, N_COLUMNS)), np.zeros((steps, N_COLUMNS))
    for hand, instrument in enumerate(midi.instruments):
        for n in instrument.notes:
            start, end = round(n.start / step), round(n.end / step)
            roll[start:end, hand * HAND + n.pitch - LOW] = 1
            onsets[start, hand * HAND + n.pitch - LOW] = 1
    return roll, onsets


def _score(*parts) -> stream.Score:
    """A score with one part per list of (MIDI pitch, quarter length); pitch None is a rest."""
    score = stream.Score()
    for notes in parts:
        part = stream.Part()
        for pitch, length in notes:
            part.append(note.Rest(quarterLength=length) if pitch is None else note.Note(pitch, quarterLength=length))
        score.insert(0, part)
    return score


# ----------------------------------------------------------------------------- one score
def test_first_chorale_notes_land_in_their_columns():
    score = corpus.parse("bach/bwv269")
    pickup = float(score.parts[0].getElementsByClass("Measure")[0].paddingLeft)
    firsts = [part.flatten().notes[0] for part in score.parts]
    step = int(round((float(firsts[0].offset) + pickup) * 4))
    expected = {(i // 2) * HAND + n.pitch.midi - LOW for i, n in enumerate(firsts)}

    pr = score_to_pianoroll(score)

    assert set(np.flatnonzero(pr.onsets[step])) == expected
    assert pr.roll[:step].sum() == 0
    soprano = list(score.parts[0].flatten().notes)
    assert soprano[0].pitch.midi == soprano[1].pitch.midi  # a repeated note: it must keep its onset
    second = int(round((float(soprano[1].offset) + pickup) * 4))
    assert pr.onsets[second, soprano[0].pitch.midi - LOW] == 1
    assert pr.roll[step:second, soprano[0].pitch.midi - LOW].all()


def test_whole_chorale_matches_music21_note_by_note():
    score = corpus.parse("bach/bwv269")
    roll, onsets = _expected_roll(score)
    pr = score_to_pianoroll(score)
    assert pr.roll.dtype == np.float32 and pr.onsets.dtype == np.float32
    np.testing.assert_array_equal(pr.roll, roll)
    np.testing.assert_array_equal(pr.onsets, onsets)
    assert (pr.n_folded, pr.n_dropped) == (0, 0)


def test_one_part_score_is_all_right_hand_and_out_of_range_notes_fold_by_octaves():
    pr = score_to_pianoroll(_score([(30, 1), (60, 1), (None, 1), (90, 1)]))
    assert pr.roll.shape == (16, N_COLUMNS)
    assert pr.roll[:, HAND:].sum() == 0
    assert np.flatnonzero(pr.onsets[:, :HAND].any(0)).tolist() == [42 - LOW, 60 - LOW, 78 - LOW]
    assert np.flatnonzero(pr.onsets.any(1)).tolist() == [0, 4, 12]
    assert pr.roll[8:12].sum() == 0  # the rest
    assert (pr.n_notes, pr.n_folded, pr.n_dropped) == (3, 2, 0)


def test_two_parts_split_into_hands_and_off_grid_notes_are_dropped_and_counted():
    third = Fraction(1, 6)  # sixteenth-note triplet: the middle note rounds to no length
    upper = [(72, third), (74, third), (76, third), (77, 1.5)]
    grace = note.Note(79).getGrace()
    score = _score(upper, [(48, 2)])
    score.parts[0].insert(1.0, grace)
    pr = score_to_pianoroll(score)
    assert np.flatnonzero(pr.onsets[:, 72 - LOW]).tolist() == [0]
    assert np.flatnonzero(pr.onsets[:, 76 - LOW]).tolist() == [1]
    assert pr.roll[:, 74 - LOW].sum() == 0 and pr.roll[:, 79 - LOW].sum() == 0
    assert pr.roll[:, HAND + 48 - LOW].tolist() == [1] * 8
    assert (pr.n_notes, pr.n_dropped) == (4, 2)


def test_tied_notes_are_one_note():
    score = corpus.parse("bach/bwv269")
    pickup = float(score.parts[0].getElementsByClass("Measure")[0].paddingLeft)
    pr = score_to_pianoroll(score)
    checked = 0
    for i, part in enumerate(score.parts):
        for n in part.flatten().notes:
            if n.tie is not None and n.tie.type == "start":
                column = (i // 2) * HAND + n.pitch.midi - LOW
                tie_end = int(round((float(n.offset) + float(n.quarterLength) + pickup) * 4))
                assert pr.roll[tie_end, column] == 1 and pr.onsets[tie_end, column] == 0
                checked += 1
    assert checked >= 2, "bwv269 has ties: the test needs some"


# ----------------------------------------------------------------------------- back to MIDI
def test_pianoroll_to_midi_reads_onsets_and_runs():
    roll = np.zeros((6, N_COLUMNS))
    roll[0:4, 10] = 1
    roll[1:3, HAND + 5] = 1
    onsets = np.zeros_like(roll)
    onsets[[0, 2], 10] = 1
    onsets[1, HAND + 5] = 1
    midi = pianoroll_to_midi(torch.tensor(roll), torch.tensor(onsets), tempo_bpm=120, program=40)
    right, left = midi.instruments
    assert (right.name, left.name, right.program) == ("right hand", "left hand", 40)
    assert [(n.pitch, n.start, n.end) for n in right.notes] == [(44, 0.0, 0.25), (44, 0.25, 0.5)]
    assert [(n.pitch, n.start, n.end) for n in left.notes] == [(39, 0.125, 0.375)]
    joined = pianoroll_to_midi(roll, None, tempo_bpm=120)
    assert [(n.start, n.end) for n in joined.instruments[0].notes] == [(0.0, 0.5)]


@pytest.mark.parametrize(
    ("roll", "onsets", "match"),
    [
        (np.full((4, N_COLUMNS), 0.7), None, r"only 0 and 1: threshold"),
        (np.zeros((4, 88)), None, r"expected \[steps, 102\]"),
        (np.zeros((4, N_COLUMNS)), np.eye(4, N_COLUMNS), r"onsets has a 1 where roll is 0"),
        (np.zeros((4, N_COLUMNS)), np.zeros((5, N_COLUMNS)), r"same shape"),
    ],
)
def test_pianoroll_to_midi_rejects_bad_input(roll, onsets, match):
    with pytest.raises(ValueError, match=match):
        pianoroll_to_midi(roll, onsets)


def test_round_trip_roll_to_midi_to_roll_is_exact_on_every_window(rolls):
    for item in rolls:
        midi = pianoroll_to_midi(item["roll"], item["onsets"], tempo_bpm=90)
        roll, onsets = _midi_to_roll(midi, len(item["roll"]), 90)
        np.testing.assert_array_equal(roll, item["roll"].numpy(), err_msg=f"{item['piece']} {item['start_step']}")
        np.testing.assert_array_equal(onsets, item["onsets"].numpy())


# ----------------------------------------------------------------------------- the dataset
def test_items_have_the_documented_format_and_both_styles(rolls):
    items = list(rolls)
    assert {(it["style"], it["style_str"]) for it in items} == {(0, "chorale"), (1, "folk")}
    for it in items:
        assert it["roll"].shape == it["onsets"].shape == (64, N_COLUMNS)
        assert it["roll"].dtype == it["onsets"].dtype == torch.float32
        assert set(it["roll"].unique().tolist()) <= {0.0, 1.0} and it["roll"].sum() > 0
        assert (it["onsets"] <= it["roll"]).all()
        assert torch.equal(it["onsets"][0], it["roll"][0])  # notes cut by the window start again
        starts = (it["roll"][1:] > it["roll"][:-1]).float()
        assert (starts <= it["onsets"][1:]).all()  # every note start after step 0 has its onset
    folk_left = sum(float(it["roll"][:, HAND:].sum()) for it in items if it["style_str"] == "folk")
    chorale_left = [float(it["roll"][:, HAND:].sum()) for it in items if it["style_str"] == "chorale"]
    assert folk_left == 0 and min(chorale_left) > 0
    batch = next(iter(torch.utils.data.DataLoader(rolls, batch_size=4)))
    assert batch["roll"].shape == (4, 64, N_COLUMNS)


def test_windows_follow_window_and_hop(root):
    rolls = PianoRolls(root=root, max_pieces=2, window=32, hop=8)
    piece = rolls.pieces[0]
    starts = [rolls[i]["start_step"] for i, (p, _) in enumerate(rolls.windows) if p == 0]
    assert starts == list(range(0, len(piece["roll"]) - 32 + 1, 8))
    item = rolls[3]
    np.testing.assert_array_equal(item["roll"].numpy(), piece["roll"][24:56])


def test_transposition_shifts_columns_and_keeps_every_note(root, rolls):
    plain = PianoRolls(root=root, max_pieces=2)
    shifts = [it["transpose"] for it in rolls]
    assert all(-4 <= s <= 4 for s in shifts) and len(set(shifts)) > 3
    for i in range(len(plain)):
        a, b, shift = plain[i]["roll"].numpy(), rolls[i]["roll"].numpy(), rolls[i]["transpose"]
        assert a.sum() == b.sum()  # nothing pushed out of 34..84
        t, c = np.nonzero(a)
        assert b[t, c + shift].all()
        assert ((c % HAND) + shift).max() <= HAND - 1 and ((c % HAND) + shift).min() >= 0


def test_transpositions_are_deterministic_per_seed_and_epoch(root, rolls):
    def shifts(ds):
        return [ds[i]["transpose"] for i in range(len(ds))]

    same = PianoRolls(root=root, max_pieces=2, transpose=4, seed=3)
    other = PianoRolls(root=root, max_pieces=2, transpose=4, seed=4)
    assert shifts(same) == shifts(rolls) and shifts(other) != shifts(rolls)
    same.set_epoch(1)
    assert shifts(same) != shifts(rolls)
    same.set_epoch(0)
    assert shifts(same) == shifts(rolls)


def test_cache_is_reused_without_parsing(root, rolls, monkeypatch):
    def fail(*args):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(pianoroll, "usable_score", fail)
    again = PianoRolls(root=root, max_pieces=2, transpose=4, seed=3)
    np.testing.assert_array_equal(again[5]["roll"].numpy(), rolls[5]["roll"].numpy())


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path):
    first = PianoRolls(root=tmp_path, styles="folk", max_pieces=1)
    npz = tmp_path / "folk-1" / "rolls.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.warns(UserWarning, match=r"rebuilding .*folk-1: its files do not match"):
        rebuilt = PianoRolls(root=tmp_path, styles=("folk",), max_pieces=1)
    assert len(rebuilt) == len(first) > 0
    np.testing.assert_array_equal(rebuilt[0]["roll"].numpy(), first[0]["roll"].numpy())


def test_default_root_is_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    PianoRolls(styles=("folk",), max_pieces=1)
    assert (tmp_path / "pianorolls" / "folk-1" / "MANIFEST.json").exists()


def test_pieces_shorter_than_the_window_give_no_windows_and_a_warning(root):
    with pytest.warns(UserWarning, match=r"2 chorale piece\(s\) are shorter than window=100000"):
        rolls = PianoRolls(root=root, styles=("chorale",), max_pieces=2, window=100000)
    assert len(rolls) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"styles": ("jazz",)}, r"style='jazz' is not known"),
        ({"window": 0}, r"window=0"),
        ({"hop": 1.5}, r"hop=1.5"),
        ({"transpose": 51}, r"transpose=51"),
        ({"max_pieces": 0}, r"max_pieces=0"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        PianoRolls(root=tmp_path, **kwargs)
