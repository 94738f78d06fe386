"""Lesson 07's evaluation: per-hand F1, note onsets and onset F1, the key-set baseline
(coursekit.metrics), and the hand rule of the controlled run (coursekit.recipes.pianoroll_hands)."""

from __future__ import annotations

import pytest
import torch

from coursekit.data.pianoroll_splits import pianoroll_splits
from coursekit.metrics import f1_by_hand, f1_counts, f1_scores, keyset_baseline, note_onsets, onset_f1
from coursekit.models.sequence import PianoRollVAEConfig, build_pianoroll_vae
from coursekit.recipes.pianoroll_hands import copy_single_part, hands_splits, transfer_by_hand


def _roll(steps: int, notes: list[tuple[int, int, int]]) -> torch.Tensor:
    """A [steps, 102] roll with column ``c`` on from ``start`` up to ``end`` for each (c, start, end)."""
    roll = torch.zeros(steps, 102)
    for column, start, end in notes:
        roll[start:end, column] = 1
    return roll


def test_note_onsets_mark_each_run_once_and_a_note_sounding_at_step_0():
    roll = _roll(8, [(3, 0, 3), (3, 4, 6), (60, 5, 8)])
    onsets = note_onsets(roll)
    assert onsets.nonzero().tolist() == [[0, 3], [4, 3], [5, 60]]
    batch = torch.stack([roll, torch.zeros_like(roll)])
    assert torch.equal(note_onsets(batch)[0], onsets) and note_onsets(batch)[1].sum() == 0


def test_onset_f1_punishes_a_late_start_that_cell_f1_barely_sees():
    target = _roll(16, [(10, 0, 8), (20, 8, 16)])
    late = _roll(16, [(10, 1, 8), (20, 9, 16)])  # both notes one sixteenth late
    cells = f1_scores(**f1_counts(late, target))
    assert cells["precision"] == 1.0 and cells["recall"] == pytest.approx(14 / 16)
    assert onset_f1(late, target) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert onset_f1(target, target)["f1"] == 1.0


def test_keyset_baseline_holds_every_used_key_for_the_whole_window():
    window = _roll(4, [(5, 0, 2), (7, 2, 4)])[None]  # key 5 on steps 0-1, key 7 on steps 2-3
    scores = keyset_baseline(window)
    # guess: both keys at all 4 steps -> 4 right cells of 8; onsets guessed (5, 0), (7, 0) vs (5, 0), (7, 2)
    assert scores["precision"] == 0.5 and scores["recall"] == 1.0 and scores["f1"] == pytest.approx(2 / 3)
    assert scores["onset_f1"] == 0.5


def test_f1_by_hand_scores_each_hand_alone():
    target = _roll(8, [(10, 0, 8), (51 + 10, 0, 4)])
    predicted = _roll(8, [(10, 0, 8)])  # right hand perfect, left hand silent
    scores = f1_by_hand(predicted, target)
    assert scores["right"]["f1"] == 1.0
    assert scores["left"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: f1_by_hand(torch.zeros(4, 51), torch.zeros(4, 51)), "102 columns"),
        (lambda: keyset_baseline(torch.zeros(4, 102)), r"windows \[n, steps, keys\]"),
        (lambda: note_onsets(torch.zeros(102)), r"\[\.\.\., steps, keys\]"),
        (lambda: hands_splits("left"), "use one of"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("rolls")


def test_copy_single_part_puts_each_folk_melody_in_both_hands_and_leaves_chorales(root):
    splits = pianoroll_splits(max_pieces=3, root=root)
    before = [p["roll"].copy() for p in splits["valid"].dataset.pieces]
    assert copy_single_part(splits) == 3  # the three folk tunes; both datasets changed alike
    for dataset in {id(s.dataset): s.dataset for s in splits.values()}.values():
        for piece, old in zip(dataset.pieces, before, strict=True):
            roll = piece["roll"]
            if piece["style"] == "folk":
                assert roll[:, 51:].any() and (roll[:, 51:] == roll[:, :51]).all()
                assert (piece["onsets"][:, 51:] == piece["onsets"][:, :51]).all()
            else:
                assert (roll == old).all()
    folk = next(i for i in range(len(splits["train"])) if splits["train"][i]["style"] == 1)
    item = splits["train"][folk]  # transposed: both hands move together
    assert torch.equal(item["roll"][:, 51:], item["roll"][:, :51])
    assert copy_single_part(splits) == 0  # nothing left with an empty left hand


def test_transfer_by_hand_with_no_move_is_the_reconstruction():
    torch.manual_seed(0)
    model = build_pianoroll_vae(PianoRollVAEConfig(hidden=8, latent_dim=4))
    rolls = torch.stack([_roll(16, [(10, 0, 8), (51 + 3, 4, 16)]), _roll(16, [(30, 0, 16)])])
    styles = torch.tensor([0, 1])
    out = transfer_by_hand(model, rolls, styles, torch.zeros(4), threshold=0.5)
    assert out["chorale"]["right_before"] == pytest.approx(100 * 8 / (16 * 51))
    assert out["chorale"]["left_before"] == pytest.approx(100 * 12 / (16 * 51))
    assert out["folk"]["left_before"] == 0.0 and out["folk"]["left_pitch_before"] != out["folk"]["left_pitch_before"]
    assert out["chorale"]["left_pitch_before"] == 34 + 3
    with torch.no_grad():
        rebuilt = model.reconstruct(rolls, threshold=0.5)
    assert out["chorale"]["left_kept_f1"] == pytest.approx(f1_by_hand(rebuilt[:1], rolls[:1])["left"]["f1"])
    assert out["folk"]["right_after"] == pytest.approx(100 * float(rebuilt[1, :, :51].mean()))
