"""Lesson 07's evaluation: per-hand F1, note onsets and onset F1, the key-set baseline
(coursekit.metrics), the hand rule of the controlled run (coursekit.recipes.pianoroll_hands), the
latent-use test (coursekit.recipes.pianoroll_vae.latent_use) and the longer run's checkpoint."""

from __future__ import annotations

import pytest
import torch

from coursekit import checkpoints, config
from coursekit.data.pianoroll_splits import pianoroll_splits
from coursekit.metrics import f1_by_hand, f1_counts, f1_scores, keyset_baseline, note_onsets, onset_f1
from coursekit.models.sequence import PianoRollVAEConfig, build_pianoroll_vae
from coursekit.recipes.pianoroll_hands import HANDS_SEEDS, copy_single_part, hands_splits, transfer_by_hand
from coursekit.recipes.pianoroll_vae import latent_use, train_pianoroll_vae


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


# ----------------------------------------------------------------------------- does the decoder use its latent?
class _CopyingVAE(torch.nn.Module):
    """A stand-in whose latent is the set of keys a window uses and whose decoder writes exactly that set."""

    device = torch.device("cpu")

    def encode(self, roll: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = roll.amax(dim=1)
        return keys, torch.zeros_like(keys)

    def generate(self, z: torch.Tensor, steps: int = 4, threshold: float = 0.5) -> torch.Tensor:
        return (z > threshold).float()[:, None, :].expand(-1, steps, -1)


def test_latent_use_scores_own_latent_perfectly_and_never_hands_a_window_its_own():
    # eight windows, each holding one key of its own: only its own latent can rebuild it
    rolls = torch.stack([_roll(4, [(5 * i, 0, 4)]) for i in range(8)])
    styles = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    for seed in range(5):  # whatever the shuffle, "another window" is never the window itself
        use = latent_use(_CopyingVAE(), rolls, styles, threshold=0.5, seed=seed)
        assert use["own_f1"] == 1.0
        assert use["other_f1"] == use["same_style_f1"] == use["zero_f1"] == 0.0
        assert use["own_vs_other_agreement"] == 0.0 and use["own_vs_other_changed"] == 1.0


def test_latent_use_sees_no_difference_when_the_decoder_ignores_z():
    torch.manual_seed(0)
    model = build_pianoroll_vae(PianoRollVAEConfig(hidden=8, latent_dim=4))
    with torch.no_grad():  # cut z out of the decoder: its initial state and its input no longer depend on it
        model.to_state.weight.zero_()
        model.decoder.weight_ih_l0.zero_()
    rolls = torch.stack([_roll(16, [(10, 0, 8)]), _roll(16, [(30, 0, 16)]), _roll(16, [(51 + 3, 4, 16)])])
    use = latent_use(model, rolls, torch.tensor([0, 1, 0]), threshold=0.5)
    assert use["own_f1"] == use["other_f1"] == use["same_style_f1"] == use["zero_f1"] == use["prior_f1"]
    assert use["own_vs_other_changed"] == 0.0


# ----------------------------------------------------------------------------- the longer run's checkpoint
@pytest.fixture(scope="module")
def long_run():
    if "pianoroll_vae_long" not in checkpoints.list_pretrained():  # a shipped checkpoint: fail, never skip
        pytest.fail("pianoroll_vae_long is not registered: run `python -m coursekit train pianoroll_vae_long --ship`.")
    return checkpoints.load_pretrained("pianoroll_vae_long", build_pianoroll_vae)


def test_long_run_is_small_continues_the_shipped_run_and_records_the_lesson_numbers(long_run):
    entry = checkpoints.list_pretrained()["pianoroll_vae_long"]
    assert (config.checkpoint_dir() / entry["file"]).stat().st_size == entry["size_bytes"] < 10 * 2**20
    model, ckpt = long_run
    metrics, shipped = ckpt["metrics"], checkpoints.load_pretrained("pianoroll_vae")[1]["metrics"]
    assert metrics["start_epochs"] == shipped["epochs_run"] == 24
    assert len(metrics["history"]["valid_loss"]) == metrics["epochs_run"] >= 1
    assert metrics["valid_loss"] < shipped["valid_loss"]  # it did train further
    assert {"f1", "onset_f1", "chorale_keys", "latent_own_f1", "move_overshoot"} <= set(metrics["lesson"])


def test_long_run_reproduces_its_recorded_prior_samples(long_run):
    # lesson_measurements decodes 256 prior draws (seed 4) at the run's threshold: no data needed
    model, ckpt = long_run
    metrics = ckpt["metrics"]
    z = torch.randn(256, model.config.latent_dim, generator=torch.Generator().manual_seed(4))
    new = model.generate(z, threshold=metrics["threshold"])
    assert float(note_onsets(new).sum((1, 2)).mean()) == pytest.approx(metrics["lesson"]["prior_notes"], abs=1e-6)
    assert float(new.sum(-1).mean()) == pytest.approx(metrics["lesson"]["prior_keys"], abs=1e-6)


def test_a_fixed_pos_weight_must_be_positive():
    for bad in (0.0, -3.0, float("nan")):
        with pytest.raises(ValueError, match="give a positive weight, or None"):
            train_pianoroll_vae(epochs=1, pos_weight=bad)


def test_the_fixed_run_holds_the_course_rules_pos_weight():
    """pianoroll_hands_both_fixed: source 002's rule trained with the right-hand rule's natural pos_weight."""
    right, both, fixed = (checkpoints.load_pretrained(f"pianoroll_hands_{name}")[1]["metrics"]
                          for name in ("right", "both", "both_fixed"))
    assert fixed["hands"] == "both" and fixed["epochs_run"] == both["epochs_run"] == right["epochs_run"]
    assert fixed["pos_weight"] == pytest.approx(right["pos_weight"])
    assert abs(both["pos_weight"] - right["pos_weight"]) > 10  # the natural weights differ; the fixed run does not


def test_the_seed_runs_change_only_the_seed():
    """pianoroll_hands_*_seed1/2: each of section 6's runs again with other initial weights and batch order."""
    for name in ("right", "both", "both_fixed"):
        base = checkpoints.load_pretrained(f"pianoroll_hands_{name}")[1]
        for seed in HANDS_SEEDS:
            other = checkpoints.load_pretrained(f"pianoroll_hands_{name}_seed{seed}")[1]
            m, b = other["metrics"], base["metrics"]
            assert m["seed"] == seed and (m["hands"], m["epochs_run"]) == (b["hands"], b["epochs_run"]), name
            assert m["pos_weight"] == pytest.approx(b["pos_weight"]) and other["config"] == base["config"], name
            key = "encoder.weight_ih_l0"
            assert not torch.equal(other["state_dict"][key], base["state_dict"][key]), f"{name}, seed {seed}"
