"""Lesson 07's recipe: the GRU-VAE on two-hand piano rolls, and the style check measured with it.

After source 002 (a GRU-VAE on two-hand piano rolls of classical pieces, BCE with ``pos_weight``,
a style classifier on the latent space, classical to jazz), on the course's data: Bach chorales
(style 0) and folk tunes (style 1), the natural ``pos_weight``, a style classifier on the latent
means, and style transfer along the direction between the style means (the source did not say how
it moved a latent). Measured on one CPU thread (see ``ROLL_EPOCHS`` for the figures).

Lesson: lessons/07_pianoroll_gru_vae.ipynb
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from coursekit import config
from coursekit.checkpoints import save_checkpoint
from coursekit.data.pianoroll_splits import ROLL_SEED, ROLL_TRANSPOSE, pianoroll_loaders, pianoroll_splits
from coursekit.losses import calibrated_threshold, positive_weight
from coursekit.metrics import active_units, f1_counts, f1_scores, frequency_baseline
from coursekit.models.sequence import (
    PianoRollVAE,
    PianoRollVAEConfig,
    build_pianoroll_vae,
    pianoroll_vae_loss,
    rolls_of,
)
from coursekit.models.style import style_direction, style_transfer, train_style_classifier
from coursekit.recipes.registry import register_recipe
from coursekit.train import fit

ROLL_CHECKPOINT = "pianoroll_vae"
ROLL_DESCRIPTION = "GRU-VAE on piano-roll windows (64 steps x 102), chorales + folk, parallel decoder, latent 32"


ROLL_LR, ROLL_EPOCHS, ROLL_PATIENCE = 2e-3, 24, 4


ROLL_CONFIG = PianoRollVAEConfig(hidden=128, latent_dim=32, decoder="parallel")


ROLL_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)  # decoding thresholds tried on valid
# Measured on one CPU thread with all 1,390 pieces (10,376 train windows), before choosing the above:
# an epoch takes ~22 s with hidden=128 and ~56 s with hidden=256. In the same 150 s, hidden=128 got
# the lower valid loss (7 epochs: 3,073 vs 3 epochs: 3,245 weighted nats per window); the
# autoregressive decoder got a much lower teacher-forced loss (2,021 in 5 epochs) but its free-running
# reconstructions were no better (best valid F1 0.28 vs 0.30 for parallel, both at threshold 0.9), so
# the parallel decoder is the default. The F1 figures are of those 150 s runs, not of the recipe.


@torch.no_grad()
def evaluate_reconstruction(model: PianoRollVAE, loader: Iterable, threshold: float = 0.5) -> dict[str, float]:
    """Cell-level precision, recall and F1 of free-running reconstructions from the posterior means.

    Each window is encoded, its ``mu`` decoded by :meth:`PianoRollVAE.reconstruct` (no teacher
    forcing, no sampling) and thresholded; every (step, column) cell counts once, so a note held
    for four steps counts four times. Counts are pooled over all windows before the ratios.

    Args:
        model: a :class:`PianoRollVAE`.
        loader: yields PianoRolls batches (or roll tensors [batch, steps, n_pitches]).
        threshold: probability above which a reconstructed cell is on.

    Returns:
        ``{"precision", "recall", "f1", "density", "predicted_density"}``: the last two are the
        fractions of cells that are on in the data and in the reconstructions.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    was_training = model.training
    model.eval()
    counts, cells = {"tp": 0, "fp": 0, "fn": 0}, 0
    try:
        for batch in loader:
            roll = rolls_of(batch).to(model.device)
            for key, value in f1_counts(model.reconstruct(roll, threshold), roll).items():
                counts[key] += value
            cells += roll.numel()
    finally:
        model.train(was_training)
    if cells == 0:
        raise ValueError("the loader yielded no windows: check its dataset size and batch_size.")
    return f1_scores(**counts) | {
        "density": (counts["tp"] + counts["fn"]) / cells,
        "predicted_density": (counts["tp"] + counts["fp"]) / cells,
    }


@torch.no_grad()
def latent_means(model: PianoRollVAE, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means of every window of ``loader``, with their style numbers.

    Args:
        model: a :class:`PianoRollVAE`.
        loader: yields PianoRolls batches ``{"roll": [b, steps, n_pitches], "style": [b], ...}``.

    Returns:
        ``(mu, styles)``: Tensor [n, latent_dim] on the CPU, and int64 Tensor [n] (0 chorale, 1 folk).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    was_training = model.training
    model.eval()
    mus, styles = [], []
    try:
        for batch in loader:
            if not isinstance(batch, dict) or "style" not in batch:
                raise ValueError("latent_means needs PianoRolls batches, dicts with 'roll' and 'style'.")
            mus.append(model.encode(batch["roll"].to(model.device))[0].cpu())
            styles.append(torch.as_tensor(batch["style"]).long())
    finally:
        model.train(was_training)
    if not mus:
        raise ValueError("the loader yielded no windows: check its dataset size and batch_size.")
    return torch.cat(mus), torch.cat(styles)


@torch.no_grad()
def describe_pianoroll_vae(
    model: PianoRollVAE, loader: DataLoader, pos_weight: float, threshold: float = 0.5
) -> dict[str, float | int]:
    """Measure a piano-roll VAE on ``loader`` in eval mode, with one posterior sample per window (seed 0).

    Returns ``{"loss", "recon", "kl"}`` (weighted nats per window, as in training), the cell-level
    ``precision``, ``recall``, ``f1``, ``density`` and ``predicted_density`` of free-running
    reconstructions from the means decoded at ``threshold`` (:func:`evaluate_reconstruction`),
    ``f1_at_0.5`` (the same at threshold 0.5) and ``active_units`` of the means.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    model.eval()
    generator = torch.Generator().manual_seed(0)
    totals, n = {"loss": 0.0, "recon": 0.0, "kl": 0.0}, 0
    for batch in loader:
        parts = pianoroll_vae_loss(model, batch, pos_weight=pos_weight, generator=generator)
        for key in totals:
            totals[key] += float(parts[key]) * len(batch["roll"])
        n += len(batch["roll"])
    mu, _ = latent_means(model, loader)
    return (
        {key: value / n for key, value in totals.items()}
        | evaluate_reconstruction(model, loader, threshold)
        | {"f1_at_0.5": evaluate_reconstruction(model, loader, 0.5)["f1"], "active_units": active_units(mu)[0]}
    )


@torch.no_grad()
def latent_use(
    model: PianoRollVAE, rolls: torch.Tensor, styles: torch.Tensor, threshold: float, seed: int = 0
) -> dict[str, float]:
    """Does the decoder use its latent? Decode other latents and score them against each window.

    Each window of ``rolls`` is scored (cell F1, counts pooled) against the decoding at
    ``threshold`` of: its own latent mean (``own_f1``), the mean of another window (``other_f1``,
    a random cycle through all windows, so never its own), of another window of the same style
    (``same_style_f1``), ``z = 0`` (``zero_f1``) and a draw from the prior (``prior_f1``). A
    decoder that ignored ``z`` would score the same in all five. ``own_vs_other_agreement`` is the
    cell F1 between the decodings of the own and the other window's mean (1: identical rolls), and
    ``own_vs_other_changed`` the fraction of the cells on in either decoding that differ.

    Args:
        model: a :class:`PianoRollVAE`.
        rolls: Tensor [n, steps, n_pitches] of 0/1 windows; styles: int Tensor [n].
        threshold: decoding threshold.
        seed: for the cycles and the prior draws.

    Returns:
        The figures above, as floats.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    generator = torch.Generator().manual_seed(seed)

    def cycle(indices: torch.Tensor) -> torch.Tensor:
        order = indices[torch.randperm(len(indices), generator=generator)]
        return order, order.roll(-1)  # order[i] is given the latent of order[i + 1]

    was_training = model.training
    model.eval()
    try:
        rolls = rolls.to(model.device)
        mu = model.encode(rolls)[0]
        other = torch.empty(len(rolls), dtype=torch.long)
        where, source = cycle(torch.arange(len(rolls)))
        other[where] = source
        same = torch.empty(len(rolls), dtype=torch.long)
        for style in styles.unique():
            where, source = cycle(torch.nonzero(styles == style).flatten())
            same[where] = source
        prior = torch.randn(mu.shape, generator=generator).to(model.device)
        latents = {"own": mu, "other": mu[other], "same_style": mu[same], "zero": torch.zeros_like(mu), "prior": prior}
        decoded = {name: model.generate(z, steps=rolls.shape[1], threshold=threshold) for name, z in latents.items()}
    finally:
        model.train(was_training)
    out = {f"{name}_f1": f1_scores(**f1_counts(roll, rolls))["f1"] for name, roll in decoded.items()}
    own, moved = decoded["own"], decoded["other"]
    out["own_vs_other_agreement"] = f1_scores(**f1_counts(moved, own))["f1"]
    either = float(((own + moved) > 0).sum())
    out["own_vs_other_changed"] = float((own != moved).sum()) / either if either else 0.0
    return out


def _pieces_of(split: Subset) -> list[str]:
    """The corpus name of the piece of each window of a :func:`pianoroll_splits` split."""
    rolls = split.dataset
    return [rolls.pieces[rolls.windows[index][0]]["piece"] for index in split.indices]


def _untransposed(splits: dict[str, Subset], name: str) -> Subset:
    """The windows of split ``name`` without transposition (the valid split's dataset never transposes)."""
    return Subset(splits["valid"].dataset, splits[name].indices)


def _stacked_rolls(dataset) -> torch.Tensor:
    """All the rolls of a dataset of PianoRolls items: Tensor [n, steps, 102]."""
    return torch.stack([item["roll"] for item in dataset])


@torch.no_grad()
def style_check(
    model: PianoRollVAE, splits: dict[str, Subset], threshold: float = 0.5, seed: int = ROLL_SEED
) -> tuple[dict[str, float], torch.Tensor]:
    """The style classifier and style transfer of source 002, measured on pieces the VAE never saw.

    - the direction = folk mean minus chorale mean of the train windows' latent means;
    - a :class:`StyleClassifier` is trained on the valid windows' latent means; ``style_accuracy``
      is its accuracy on the quarter of valid pieces it did not train on, ``style_accuracy_test``
      on every test window;
    - each test window is moved to the other style (chorale ``+direction``, folk ``-direction``)
      and decoded. ``transfer_latent_flip``: fraction whose moved latent the classifier calls the
      target style (nearly guaranteed by construction); ``transfer_flip``: fraction whose decoded
      roll, encoded again, it calls the target style (the real test); ``transfer_kept_f1``: F1
      of the decoded roll against the original (how much of the window survives); and the
      fraction of cells on in the left hand before and after, per direction. Decoding uses ``threshold``.

    Returns:
        ``(metrics, direction)``: the figures above as floats, and the direction Tensor [latent_dim].

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    plain = {name: DataLoader(_untransposed(splits, name), batch_size=256) for name in splits}
    mu_train, styles_train = latent_means(model, plain["train"])
    direction = style_direction(mu_train, styles_train)
    mu_valid, styles_valid = latent_means(model, plain["valid"])
    classifier, accuracy = train_style_classifier(mu_valid, styles_valid, groups=_pieces_of(splits["valid"]), seed=seed)
    mu_test, styles_test = latent_means(model, plain["test"])
    rolls = _stacked_rolls(splits["test"])
    strength = 1.0 - 2.0 * styles_test.float()  # chorale (0) -> +1, folk (1) -> -1
    target = 1 - styles_test
    moved_rolls, moved = style_transfer(
        model, None, strength[:, None] * direction, source_mu=mu_test, threshold=threshold
    )
    again, _ = model.encode(moved_rolls)
    left = slice(51, 102)
    out = {
        "style_accuracy": accuracy,
        "style_accuracy_test": float((classifier.predict(mu_test) == styles_test).float().mean()),
        "transfer_latent_flip": float((classifier.predict(moved) == target).float().mean()),
        "transfer_flip": float((classifier.predict(again) == target).float().mean()),
        "transfer_kept_f1": f1_scores(**f1_counts(moved_rolls, rolls))["f1"],
        "style_direction_norm": float(direction.norm()),
    }
    for style, name in enumerate(("chorale", "folk")):
        chosen = styles_test == style
        out[f"{name}_left_density"] = float(rolls[chosen][..., left].mean())
        out[f"{name}_moved_left_density"] = float(moved_rolls[chosen][..., left].mean())
        out[f"{name}_transfer_flip"] = float((classifier.predict(again[chosen]) == target[chosen]).float().mean())
    return out, direction


def choose_threshold(
    model: PianoRollVAE, loader: DataLoader, thresholds: tuple[float, ...] = ROLL_THRESHOLDS
) -> tuple[float, dict[float, float]]:
    """The decoding threshold with the best reconstruction F1 on ``loader``, and the F1 of each one tried.

    A decoder trained with the natural ``pos_weight`` overstates probabilities (see
    :func:`~coursekit.models.sequence.calibrated_threshold`), so 0.5 turns on far too many cells;
    choose the threshold on the validation windows, never on the test windows.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    scores = {t: evaluate_reconstruction(model, loader, t)["f1"] for t in thresholds}
    return max(scores, key=scores.get), scores


def train_pianoroll_vae(
    vae_config: PianoRollVAEConfig = ROLL_CONFIG,
    epochs: int = ROLL_EPOCHS,
    max_pieces: int | None = None,
    checkpoint_path: str | Path | None = None,
    patience: int | None = ROLL_PATIENCE,
    lr: float = ROLL_LR,
    transpose: int = ROLL_TRANSPOSE,
    seed: int = ROLL_SEED,
    time_budget_s: float | None = None,
    live_plot: bool | str = "auto",
    progress: bool = True,
    splits: dict[str, Subset] | None = None,
    initial_state: dict[str, torch.Tensor] | None = None,
    pos_weight: float | None = None,
) -> tuple[PianoRollVAE, dict]:
    """Train a piano-roll GRU-VAE on both styles and return it with its measurements.

    BCE with the natural ``pos_weight`` of the train windows (:func:`positive_weight`) plus the KL
    (beta 1); Adam; early stopping on the valid loss; the model keeps the best epoch's weights.
    After training, the decoding threshold with the best valid F1 is chosen among
    ``ROLL_THRESHOLDS`` (``threshold``, and ``valid_f1_by_threshold``). Measurements with it:
    :func:`describe_pianoroll_vae` on valid and test (``valid_*``, ``test_*``), :func:`style_check`,
    the column-frequency baseline's F1 (``baseline_valid_f1``, ``baseline_test_f1``; an all-zero roll
    scores 0); and ``pos_weight``, ``calibrated_threshold``, ``epochs_run``, ``best_epoch``,
    ``train_time_s``, ``train_windows``, ``parameters``, ``history`` and ``style_direction`` (a list
    of floats: folk mean minus chorale mean of the train windows' latent means). ``splits``: windows
    already made by :func:`pianoroll_splits` (e.g. with another hand rule,
    :mod:`coursekit.recipes.pianoroll_hands`); by default they are made from ``max_pieces``,
    ``transpose`` and ``seed``. ``initial_state``: a state dict of the same network to start from
    (e.g. a trained checkpoint's, to train it longer) instead of the seeded initialisation.
    ``pos_weight``: a fixed weight for the sounding cells instead of the natural one (to hold it
    equal across runs whose data differ, :mod:`coursekit.recipes.pianoroll_hands`).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if pos_weight is not None and not pos_weight > 0:
        raise ValueError(f"pos_weight={pos_weight!r}: give a positive weight, or None for the train windows' own.")
    config.seed_everything(seed)
    splits = pianoroll_splits(max_pieces, transpose, seed) if splits is None else splits
    loaders = pianoroll_loaders(splits, seed=seed)
    pos_weight = positive_weight(splits["train"]) if pos_weight is None else float(pos_weight)
    model = build_pianoroll_vae(vae_config)
    if initial_state is not None:
        model.load_state_dict(initial_state)

    def loss_fn(vae: PianoRollVAE, batch: dict) -> dict[str, torch.Tensor]:
        return pianoroll_vae_loss(vae, batch, pos_weight=pos_weight)

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    history = fit(
        model, loaders["train"], loss_fn, optimizer, valid_loader=loaders["valid"], epochs=epochs,
        patience=patience, time_budget_s=time_budget_s, live_plot=live_plot, progress=progress, restore_best=True,
    )
    seconds = time.perf_counter() - start
    threshold, by_threshold = choose_threshold(model, loaders["valid"])
    train_rolls = _stacked_rolls(_untransposed(splits, "train"))
    style, direction = style_check(model, splits, threshold, seed)
    metrics = {
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "stop_reason": history.stop_reason,
        "train_time_s": round(seconds, 1),
        "train_windows": len(splits["train"]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "pos_weight": pos_weight,
        "calibrated_threshold": calibrated_threshold(pos_weight),
        "threshold": threshold,
        "valid_f1_by_threshold": {str(t): f1 for t, f1 in by_threshold.items()},
        **{f"valid_{k}": v for k, v in describe_pianoroll_vae(model, loaders["valid"], pos_weight, threshold).items()},
        **{f"test_{k}": v for k, v in describe_pianoroll_vae(model, loaders["test"], pos_weight, threshold).items()},
        "baseline_valid_f1": frequency_baseline(train_rolls, _stacked_rolls(splits["valid"]))["f1"],
        "baseline_test_f1": frequency_baseline(train_rolls, _stacked_rolls(splits["test"]))["f1"],
        **style,
        "style_direction": direction.tolist(),
        "history": {key: history.series(key) for key in ("train_loss", "valid_loss", "valid_recon", "valid_kl")},
    }
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, vae_config.to_dict(), metrics)
    return model, metrics


@register_recipe(ROLL_CHECKPOINT, ROLL_DESCRIPTION)
def pianoroll_vae_recipe(path: Path, ship: bool) -> None:
    """Train the lesson-07 GRU-VAE and write it to ``path``."""
    _, metrics = train_pianoroll_vae(checkpoint_path=path, live_plot=False, progress=False)
    print(
        f"{ROLL_CHECKPOINT}: valid F1 {metrics['valid_f1']:.3f} at threshold {metrics['threshold']} "
        f"(baseline {metrics['baseline_valid_f1']:.3f}), style accuracy {metrics['style_accuracy']:.3f}, "
        f"transfer flip {metrics['transfer_flip']:.3f}, {metrics['epochs_run']} epochs, {metrics['train_time_s']} s"
    )
