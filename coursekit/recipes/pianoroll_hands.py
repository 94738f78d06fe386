"""Lesson 07's controlled runs: where a one-part piece goes on the two-hand grid, and training longer.

The hand rule. The course puts a piece with a single part (every folk tune of the corpus) in the
right hand and leaves the left hand empty (:mod:`coursekit.data.pianoroll`); source 002 copied a
single part into both hands. Everything else equal (network, seed, pieces, split, transpositions,
epochs), the two recipes here train the lesson's GRU-VAE once with each rule (``HANDS``), for
``HANDS_EPOCHS`` epochs, so that the lesson can say what the rule, and only the rule, changes.
:func:`transfer_by_hand` measures what a style move does to each hand.

Training longer. The shipped ``pianoroll_vae`` was still improving at its last (24th) epoch. The
recipe ``pianoroll_vae_long`` continues it: the shipped weights, the same data, seed, learning
rate and loss, for ``LONG_EPOCHS`` more epochs (patience ``LONG_PATIENCE``, and no more than
``LONG_BUDGET_S`` seconds of training), with a fresh Adam (the checkpoint holds no optimiser
state). It stores beside the recipe's metrics the lesson's own measurements
(:func:`lesson_measurements`), so the lesson can print both runs side by side without evaluating
the longer one.

Lesson: lessons/07_pianoroll_gru_vae.ipynb
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from coursekit.checkpoints import load_checkpoint, save_checkpoint
from coursekit.data.pianoroll import N_PITCHES
from coursekit.data.pianoroll_splits import ROLL_SEED, ROLL_TRANSPOSE, pianoroll_splits
from coursekit.losses import positive_weight
from coursekit.metrics import HAND_COLUMNS, f1_by_hand, f1_counts, f1_scores, note_onsets, onset_f1
from coursekit.models.sequence import PianoRollVAE, build_pianoroll_vae
from coursekit.models.style import style_transfer
from coursekit.recipes.pianoroll_vae import latent_use, train_pianoroll_vae
from coursekit.recipes.registry import checkpoint_in_use, register_recipe

HANDS = ("right", "both")  # a one-part piece: all in the right hand (the course), or copied into both (source 002)
HANDS_EPOCHS = 12  # half the shipped model's 24; about 10 CPU minutes a run (shared machine), evaluation included
LONG_EPOCHS, LONG_PATIENCE = 24, 6  # on top of the shipped model's 24 epochs, which it ran all of, still improving
LONG_BUDGET_S = 3300.0  # a guard for a busy machine: 24 epochs take about 10 minutes on one idle CPU thread
LONG_CHECKPOINT = "pianoroll_vae_long"


def copy_single_part(splits: dict[str, Subset]) -> int:
    """Copy the right hand into the left hand of every piece whose left hand is empty throughout (source 002's rule).

    Changes the datasets behind ``splits`` (from :func:`pianoroll_splits`) in place, rolls and onsets.

    Returns:
        The number of pieces changed per dataset (every folk tune; no chorale has an empty left hand).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    datasets = {id(split.dataset): split.dataset for split in splits.values()}
    changed = set()
    for rolls in datasets.values():
        for number, piece in enumerate(rolls.pieces):
            if piece["roll"][:, N_PITCHES:].any():
                continue
            for key in ("roll", "onsets"):
                right = piece[key][:, :N_PITCHES]
                piece[key] = np.concatenate([right, right], axis=1)
            changed.add(number)
    return len(changed)


def hands_splits(hands: str, max_pieces: int | None = None, seed: int = ROLL_SEED) -> dict[str, Subset]:
    """:func:`pianoroll_splits` with the hand rule ``hands`` (one of ``HANDS``) for one-part pieces.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if hands not in HANDS:
        raise ValueError(f"hands={hands!r}: use one of {HANDS}.")
    splits = pianoroll_splits(max_pieces, ROLL_TRANSPOSE, seed)
    if hands == "both":
        copy_single_part(splits)
    return splits


def _left_pitch(rolls: torch.Tensor) -> float:
    """Mean MIDI pitch of the left hand's sounding cells (nan when it is empty)."""
    left = rolls[..., HAND_COLUMNS["left"]]
    pitches = torch.arange(34, 34 + N_PITCHES, dtype=torch.float32)
    return float((left * pitches).sum() / left.sum()) if left.sum() else float("nan")


@torch.no_grad()
def transfer_by_hand(
    model: PianoRollVAE, rolls: torch.Tensor, styles: torch.Tensor, direction: torch.Tensor, threshold: float
) -> dict[str, dict[str, float]]:
    """What moving each window to the other style does to each hand, per source style.

    Chorales (style 0) move by ``+direction``, folk tunes (style 1) by ``-direction``, from their
    latent means; the moved latent is decoded at ``threshold``.

    Args:
        model: a :class:`PianoRollVAE`.
        rolls: Tensor [n, steps, 102], the windows; styles: int Tensor [n] (0 chorale, 1 folk).
        direction: Tensor [latent_dim], folk mean minus chorale mean.
        threshold: decoding threshold.

    Returns:
        ``{"chorale": {...}, "folk": {...}}``, each with the percent of cells on per hand before
        and after (``right_before``, ``right_after``, ``left_before``, ``left_after``), the cell F1
        of each hand of the moved roll against the original (``right_kept_f1``, ``left_kept_f1``),
        the onset F1 of the whole roll (``onset_kept_f1``), and the mean left-hand pitch before
        and after (``left_pitch_before``, ``left_pitch_after``; nan for an empty hand).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    strength = 1.0 - 2.0 * styles.float()  # chorale (0) -> +1, folk (1) -> -1
    shift = (strength[:, None] * direction.cpu()).to(model.device)
    moved = style_transfer(model, rolls.to(model.device), shift, threshold=threshold)[0].cpu()
    out = {}
    for style, name in enumerate(("chorale", "folk")):
        before, after = rolls[styles == style], moved[styles == style]
        row = {}
        for hand, cols in HAND_COLUMNS.items():
            row[f"{hand}_before"] = 100 * float(before[..., cols].mean())
            row[f"{hand}_after"] = 100 * float(after[..., cols].mean())
            row[f"{hand}_kept_f1"] = f1_scores(**f1_counts(after[..., cols], before[..., cols]))["f1"]
        row["onset_kept_f1"] = onset_f1(after, before)["f1"]
        row["left_pitch_before"], row["left_pitch_after"] = _left_pitch(before), _left_pitch(after)
        out[name] = row
    return out


def train_hands_run(
    hands: str,
    epochs: int = HANDS_EPOCHS,
    max_pieces: int | None = None,
    checkpoint_path: str | Path | None = None,
    pos_weight: float | None = None,
    seed: int = ROLL_SEED,
) -> tuple[PianoRollVAE, dict]:
    """Train the lesson's GRU-VAE (the recipe of :mod:`coursekit.recipes.pianoroll_vae`) with the hand rule ``hands``.

    No early stopping, so both rules get exactly ``epochs`` epochs (the best valid epoch's weights
    are kept, as in the recipe). ``pos_weight``: None for the natural weight of this rule's train
    windows, or a fixed one (:func:`right_rule_pos_weight` holds it at the course's rule's value).
    ``seed`` sets the initial weights and the batch order; the windows stay those of the default seed.
    The stored measurements are those of :func:`train_pianoroll_vae`, plus ``hands`` and ``seed``.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    splits = hands_splits(hands, max_pieces)
    model, metrics = train_pianoroll_vae(
        epochs=epochs, patience=None, max_pieces=max_pieces, splits=splits, live_plot=False, progress=False,
        pos_weight=pos_weight, seed=seed,
    )
    metrics["hands"], metrics["seed"] = hands, seed
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, model.config.to_dict(), metrics)
    return model, metrics


def right_rule_pos_weight(max_pieces: int | None = None) -> float:
    """The natural ``pos_weight`` of the train windows under the course's rule (``hands="right"``).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    return positive_weight(hands_splits("right", max_pieces)["train"])


def _hands_recipe(hands: str, fixed_pos_weight: bool = False, seed: int = ROLL_SEED):
    def train(path: Path, ship: bool) -> None:
        weight = right_rule_pos_weight() if fixed_pos_weight else None
        _, m = train_hands_run(hands, checkpoint_path=path, pos_weight=weight, seed=seed)
        print(f"{path.stem}: valid F1 {m['valid_f1']:.3f} at {m['threshold']}, style accuracy "
              f"{m['style_accuracy']:.3f}, transfer flip {m['transfer_flip']:.3f}, {m['train_time_s']} s")

    return train


for _hands in HANDS:
    register_recipe(
        f"pianoroll_hands_{_hands}",
        f"lesson 07's GRU-VAE, {HANDS_EPOCHS} epochs, one-part pieces in "
        + ("the right hand only (the course's rule)" if _hands == "right" else "both hands (source 002's rule)"),
    )(_hands_recipe(_hands))
register_recipe(
    "pianoroll_hands_both_fixed",
    f"lesson 07's GRU-VAE, {HANDS_EPOCHS} epochs, one-part pieces in both hands (source 002's rule) with the "
    "pos_weight of the course's rule, so that the hand rule is the only change",
)(_hands_recipe("both", fixed_pos_weight=True))
HANDS_SEEDS = (1, 2)  # two more seeds of each of the three runs above: the spread of section 6's numbers
for _seed in HANDS_SEEDS:
    for _name, _hands, _fixed in (("right", "right", False), ("both", "both", False), ("both_fixed", "both", True)):
        register_recipe(
            f"pianoroll_hands_{_name}_seed{_seed}",
            f"lesson 07's GRU-VAE: pianoroll_hands_{_name} with seed {_seed} (other initial weights and batch order)",
        )(_hands_recipe(_hands, _fixed, _seed))


@torch.no_grad()
def lesson_measurements(
    model: PianoRollVAE, splits: dict[str, Subset], threshold: float, direction: torch.Tensor, seed: int = 4
) -> dict[str, float]:
    """The numbers lesson 07 prints for the shipped model, measured on ``model``'s test windows.

    Decoding from the latent means at ``threshold``: cell ``precision``, ``recall``, ``f1`` and
    ``onset_f1``; per style (``chorale_``, ``folk_``) the keys sounding at once in the data
    (``keys_data``), in the reconstructions (``keys``) and at threshold 0.95 (``keys_at_0.95``),
    and each hand's F1 (``right_f1``, ``left_f1``); notes per window and the percent of windows
    with an empty left hand for the test windows (``data_``), the reconstructions (``recon_``) and
    256 prior samples drawn with ``seed`` (``prior_``, with ``prior_keys``); the style move of
    :func:`transfer_by_hand` (``move_chorale_*``, ``move_folk_*`` and ``move_overshoot``, a moved
    folk tune's left-hand density over a real chorale's); and :func:`latent_use` (``latent_*``).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    test = splits["test"]
    rolls = torch.stack([test[i]["roll"] for i in range(len(test))])
    styles = torch.tensor([test[i]["style"] for i in range(len(test))])
    was_training = model.training
    model.eval()
    try:
        probs = torch.sigmoid(model.decode(model.encode(rolls.to(model.device))[0])).cpu()
        prior = torch.randn(256, model.config.latent_dim, generator=torch.Generator().manual_seed(seed))
        new = model.generate(prior.to(model.device), threshold=threshold).cpu()
    finally:
        model.train(was_training)
    rebuilt = (probs > threshold).float()
    cells = f1_scores(**f1_counts(rebuilt, rolls))
    out = {key: cells[key] for key in ("precision", "recall", "f1")} | {"onset_f1": onset_f1(rebuilt, rolls)["f1"]}
    for style, name in enumerate(("chorale", "folk")):
        chosen = styles == style
        by_hand = f1_by_hand(rebuilt[chosen], rolls[chosen])
        out |= {
            f"{name}_keys_data": float(rolls[chosen].sum(-1).mean()),
            f"{name}_keys": float(rebuilt[chosen].sum(-1).mean()),
            f"{name}_keys_at_0.95": float((probs[chosen] > 0.95).float().sum(-1).mean()),
            f"{name}_right_f1": by_hand["right"]["f1"],
            f"{name}_left_f1": by_hand["left"]["f1"],
        }
    for name, r in (("data", rolls), ("recon", rebuilt), ("prior", new)):
        out[f"{name}_notes"] = float(note_onsets(r).sum((1, 2)).mean())
        out[f"{name}_empty_left"] = 100 * float((r[..., HAND_COLUMNS["left"]].sum((1, 2)) == 0).float().mean())
    out["prior_keys"] = float(new.sum(-1).mean())
    moves = transfer_by_hand(model, rolls, styles, direction, threshold)
    for name, row in moves.items():
        out |= {f"move_{name}_{key}": value for key, value in row.items()}
    out["move_overshoot"] = moves["folk"]["left_after"] / moves["chorale"]["left_before"]
    out |= {f"latent_{key}": value for key, value in latent_use(model, rolls, styles, threshold).items()}
    return out


def train_long_run(
    epochs: int = LONG_EPOCHS, patience: int = LONG_PATIENCE, time_budget_s: float | None = LONG_BUDGET_S,
    max_pieces: int | None = None, checkpoint_path: str | Path | None = None, ship: bool = False, progress: bool = True,
) -> tuple[PianoRollVAE, dict]:
    """Train ``pianoroll_vae`` further, and add :func:`lesson_measurements` as ``metrics["lesson"]``.

    Starts from the weights of ``pianoroll_vae`` (the shipped checkpoint with ``ship``, else the
    student's own run if there is one) and runs its recipe (:func:`train_pianoroll_vae`: same data,
    seed, learning rate, threshold choice) for up to ``epochs`` more epochs and ``time_budget_s``
    seconds (``metrics["stop_reason"]`` says which ended it), with a fresh Adam.
    ``metrics["history"]`` holds the new epochs only; ``metrics["start_epochs"]`` is the number of
    epochs of the run it started from, so its epoch ``e`` is epoch ``start_epochs + e`` overall.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    start = load_checkpoint(checkpoint_in_use("pianoroll_vae", ship), build_pianoroll_vae)
    start_model, start_metrics = start[0], start[1]["metrics"]
    model, metrics = train_pianoroll_vae(
        vae_config=start_model.config, epochs=epochs, patience=patience, time_budget_s=time_budget_s,
        max_pieces=max_pieces, live_plot=False, progress=progress, initial_state=start_model.state_dict(),
    )
    metrics["start_epochs"] = start_metrics["epochs_run"]
    splits = hands_splits("right", max_pieces)
    direction = torch.tensor(metrics["style_direction"])
    metrics["lesson"] = lesson_measurements(model, splits, metrics["threshold"], direction)
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, model.config.to_dict(), metrics)
    return model, metrics


@register_recipe(LONG_CHECKPOINT, f"lesson 07's pianoroll_vae, {LONG_EPOCHS} epochs more (patience {LONG_PATIENCE})")
def _long_recipe(path: Path, ship: bool) -> None:
    _, m = train_long_run(checkpoint_path=path, ship=ship)
    print(f"{LONG_CHECKPOINT}: valid F1 {m['valid_f1']:.3f} at {m['threshold']}, "
          f"onset F1 {m['lesson']['onset_f1']:.3f}, best epoch {m['best_epoch']} of {m['epochs_run']} more, "
          f"{m['train_time_s']} s")
