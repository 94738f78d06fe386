"""Lesson 07's controlled run: where a one-part piece goes on the two-hand grid, and what that does to "style".

The course puts a piece with a single part (every folk tune of the corpus) in the right hand and
leaves the left hand empty (:mod:`coursekit.data.pianoroll`); source 002 copied a single part into
both hands. Everything else equal (network, seed, pieces, split, transpositions, epochs), the two
recipes here train the lesson's GRU-VAE once with each rule (``HANDS``), for ``HANDS_EPOCHS``
epochs, so that the lesson can say what the rule, and only the rule, changes.
:func:`transfer_by_hand` measures what a style move does to each hand.

Lesson: lessons/07_pianoroll_gru_vae.ipynb
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from coursekit.checkpoints import save_checkpoint
from coursekit.data.pianoroll import N_PITCHES
from coursekit.data.pianoroll_splits import ROLL_SEED, ROLL_TRANSPOSE, pianoroll_splits
from coursekit.metrics import HAND_COLUMNS, f1_counts, f1_scores, onset_f1
from coursekit.models.sequence import PianoRollVAE
from coursekit.models.style import style_transfer
from coursekit.recipes.pianoroll_vae import train_pianoroll_vae
from coursekit.recipes.registry import register_recipe

HANDS = ("right", "both")  # a one-part piece: all in the right hand (the course), or copied into both (source 002)
HANDS_EPOCHS = 12  # half the shipped model's 24; about 10 CPU minutes a run (shared machine), evaluation included


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
    hands: str, epochs: int = HANDS_EPOCHS, max_pieces: int | None = None, checkpoint_path: str | Path | None = None
) -> tuple[PianoRollVAE, dict]:
    """Train the lesson's GRU-VAE (the recipe of :mod:`coursekit.recipes.pianoroll_vae`) with the hand rule ``hands``.

    No early stopping, so both rules get exactly ``epochs`` epochs (the best valid epoch's weights
    are kept, as in the recipe). The stored measurements are those of :func:`train_pianoroll_vae`, plus ``hands``.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    splits = hands_splits(hands, max_pieces)
    model, metrics = train_pianoroll_vae(
        epochs=epochs, patience=None, max_pieces=max_pieces, splits=splits, live_plot=False, progress=False
    )
    metrics["hands"] = hands
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, model.config.to_dict(), metrics)
    return model, metrics


def _hands_recipe(hands: str):
    def train(path: Path, ship: bool) -> None:
        _, m = train_hands_run(hands, checkpoint_path=path)
        print(f"pianoroll_hands_{hands}: valid F1 {m['valid_f1']:.3f} at {m['threshold']}, style accuracy "
              f"{m['style_accuracy']:.3f}, transfer flip {m['transfer_flip']:.3f}, {m['train_time_s']} s")

    return train


for _hands in HANDS:
    register_recipe(
        f"pianoroll_hands_{_hands}",
        f"lesson 07's GRU-VAE, {HANDS_EPOCHS} epochs, one-part pieces in "
        + ("the right hand only (the course's rule)" if _hands == "right" else "both hands (source 002's rule)"),
    )(_hands_recipe(_hands))
