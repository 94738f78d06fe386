"""Style on a piano-roll VAE's latent space (source 002): a classifier that tells chorale from folk
latents, the direction between the two styles' mean latents, and style transfer along it.

Lesson 07 trains the classifier on latent means of windows the VAE never trained on, and measures
whether a moved and decoded window is called the other style when encoded again.

Example::

    direction = style_direction(mu, styles)                    # chorale -> folk
    folky, z = style_transfer(model, chorale_rolls, direction, strength=1.0)

Lesson: lessons/07_pianoroll_gru_vae.ipynb
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.checks import check_probability
from coursekit.models.sequence import PianoRollVAE, check_latent


class StyleClassifier(nn.Module):
    """A small MLP from latent means to style logits: ``[batch, latent_dim] -> [batch, n_styles]``.

    Args:
        latent_dim: size of the latent means it reads.
        hidden: width of its one hidden layer (ReLU).
        n_styles: number of styles (2: chorale, folk).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """

    def __init__(self, latent_dim: int, hidden: int = 32, n_styles: int = 2) -> None:
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("hidden", hidden), ("n_styles", n_styles)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        self.latent_dim = latent_dim
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_styles))

    def forward(self, mu: torch.Tensor) -> torch.Tensor:
        """Style logits ``[batch, n_styles]`` of latent means ``mu [batch, latent_dim]``.

        Lesson: lessons/07_pianoroll_gru_vae.ipynb
        """
        check_latent(mu, self.latent_dim, "mu")
        return self.net(mu)

    @torch.no_grad()
    def predict(self, mu: torch.Tensor) -> torch.Tensor:
        """The most likely style of each latent: int64 Tensor [batch].

        Lesson: lessons/07_pianoroll_gru_vae.ipynb
        """
        return self(mu).argmax(dim=1)


def _check_labelled(mu: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if not isinstance(mu, torch.Tensor) or mu.dim() != 2 or not mu.is_floating_point():
        shape = list(mu.shape) if isinstance(mu, torch.Tensor) else type(mu).__name__
        raise ValueError(f"mu has shape {shape}; expected a float Tensor [n, latent_dim] (see latent_means).")
    labels = torch.as_tensor(labels)
    if labels.shape != (len(mu),):
        raise ValueError(f"labels have shape {list(labels.shape)} but mu has {len(mu)} rows: pass one label per row.")
    if labels.is_floating_point() or (labels < 0).any():
        raise ValueError("labels must be whole style numbers >= 0 (0 chorale, 1 folk).")
    return labels.long()


def _held_out_mask(n: int, held_out: float, groups: Sequence | None, seed: int) -> torch.Tensor:
    """Bool Tensor [n]: True for the rows held out; whole groups go together when ``groups`` is given."""
    generator = torch.Generator().manual_seed(seed)
    if groups is None:
        order = torch.randperm(n, generator=generator)
        mask = torch.zeros(n, dtype=torch.bool)
        mask[order[: max(1, round(held_out * n))]] = True
        return mask
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries but mu has {n} rows: pass one group (piece) per row.")
    names = sorted(set(groups), key=str)
    order = torch.randperm(len(names), generator=generator).tolist()
    chosen = {names[i] for i in order[: max(1, round(held_out * len(names)))]}
    return torch.tensor([g in chosen for g in groups])


def train_style_classifier(
    mu: torch.Tensor,
    labels: torch.Tensor,
    held_out: float = 0.25,
    groups: Sequence | None = None,
    epochs: int = 300,
    lr: float = 1e-2,
    hidden: int = 32,
    seed: int = 0,
) -> tuple[StyleClassifier, float]:
    """Fit a :class:`StyleClassifier` on part of the latents and measure it on the rest.

    Full-batch Adam on cross-entropy. Windows of one piece overlap, so pass ``groups`` (the piece
    of each row) to hold out whole pieces; otherwise rows are held out at random.

    Args:
        mu: Tensor [n, latent_dim] of posterior means (:func:`latent_means`).
        labels: int Tensor [n] of style numbers (0 chorale, 1 folk).
        held_out: fraction of rows (or of groups) kept out of training, in (0, 1).
        groups: optional sequence of n hashable group names (e.g. ``batch["piece"]``).
        epochs: full-batch optimizer steps.
        lr: Adam learning rate.
        hidden: the classifier's hidden width.
        seed: seeds the initialisation and the held-out choice.

    Returns:
        ``(classifier, accuracy)``: the classifier in eval mode, and its accuracy on the held-out rows.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    labels = _check_labelled(mu, labels)
    check_probability(held_out, "held_out")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs={epochs!r} must be a whole number >= 1.")
    mu = mu.detach().float().cpu()
    test = _held_out_mask(len(mu), held_out, groups, seed)
    if test.all() or not test.any():
        raise ValueError(f"held_out={held_out} with {len(mu)} rows leaves no rows to train on or to test on.")
    torch.manual_seed(seed)
    classifier = StyleClassifier(mu.shape[1], hidden, n_styles=max(2, int(labels.max()) + 1))
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    with torch.enable_grad():  # also when called under torch.no_grad()
        for _ in range(epochs):
            optimizer.zero_grad()
            F.cross_entropy(classifier(mu[~test]), labels[~test]).backward()
            optimizer.step()
    classifier.eval()
    accuracy = float((classifier.predict(mu[test]) == labels[test]).float().mean())
    return classifier, accuracy


def style_direction(mu: torch.Tensor, styles: torch.Tensor, source: int = 0, target: int = 1) -> torch.Tensor:
    """The vector from one style's mean latent to another's: ``mean(mu[target]) - mean(mu[source])``.

    Args:
        mu: Tensor [n, latent_dim] of posterior means.
        styles: int Tensor [n] of style numbers.
        source, target: style numbers; default chorale (0) to folk (1).

    Returns:
        Tensor [latent_dim]; adding it to a chorale window's latent moves it to the folk mean's side.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    styles = _check_labelled(mu, styles)
    means = []
    for style in (source, target):
        chosen = styles == style
        if not chosen.any():
            found = styles.unique().tolist()
            raise ValueError(f"no row has style {style}: pass latents of both styles (found styles {found}).")
        means.append(mu[chosen].mean(dim=0))
    return means[1] - means[0]


@torch.no_grad()
def style_transfer(
    model: PianoRollVAE,
    roll: torch.Tensor | None,
    direction: torch.Tensor,
    strength: float = 1.0,
    source_mu: torch.Tensor | None = None,
    threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move windows' latents along a style direction and decode them (the source's "style changer").

    ``z = mu + strength * direction``, then free-running decoding from ``z``. With ``direction =
    style_direction(mu, styles)`` (folk mean minus chorale mean), ``strength = 1`` moves a chorale
    window by the whole distance between the style means, ``-1`` moves a folk window the other
    way, and fractions go part of the way. Whatever the latent does not encode about style (the
    rhythm, the contour) is meant to survive; how much does is what the lesson listens to.

    Args:
        model: a :class:`PianoRollVAE`.
        roll: Tensor [batch, steps, n_pitches] of windows to move, or None when ``source_mu`` is given.
        direction: Tensor [latent_dim] (or [batch, latent_dim]), e.g. from :func:`style_direction`.
        strength: how far to move, in multiples of ``direction``.
        source_mu: Tensor [batch, latent_dim] of latents to start from instead of encoding ``roll``.
        threshold: probability above which a decoded cell is on.

    Returns:
        ``(new_roll, z)``: 0/1 Tensor [batch, steps, n_pitches] (``roll``'s steps, else
        ``config.steps``) and the moved latents Tensor [batch, latent_dim].

    Example::

        direction = style_direction(mu, styles)                    # chorale -> folk
        folky, z = style_transfer(model, chorale_batch["roll"], direction, strength=1.0)

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if (roll is None) == (source_mu is None):
        raise ValueError("pass exactly one of roll (windows to encode) and source_mu (their latent means).")
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not math.isfinite(strength):
        raise ValueError(f"strength={strength!r} must be a finite number (1.0 moves by the whole direction).")
    latent_dim = model.config.latent_dim
    if not isinstance(direction, torch.Tensor) or direction.shape[-1:] != (latent_dim,) or direction.dim() > 2:
        shape = list(direction.shape) if isinstance(direction, torch.Tensor) else type(direction).__name__
        raise ValueError(f"direction has shape {shape}; expected [{latent_dim}] (see style_direction).")
    was_training = model.training
    model.eval()
    try:
        mu = model.encode(roll)[0] if roll is not None else source_mu
        check_latent(mu, latent_dim, "source_mu")
        z = mu + strength * direction.to(mu.device, mu.dtype)
        steps = roll.shape[1] if roll is not None else None
        return model.generate(z, steps=steps, threshold=threshold), z
    finally:
        model.train(was_training)
