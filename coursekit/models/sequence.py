"""A GRU-VAE on two-hand piano rolls, its pos_weight loss, a style classifier on its latent space,
and style transfer by moving latents between the style means (source 002).

The data are windows ``roll [batch, steps, 102]`` of 0/1 cells from
:class:`coursekit.data.pianoroll.PianoRolls` (64 sixteenth-note steps; columns 0-50 the right
hand, 51-101 the left hand, MIDI 34-84). The model::

    mu, logvar = model.encode(roll)              # each [batch, latent_dim]
    z = model.reparameterize(mu, logvar)         # z = mu + exp(logvar / 2) * eps
    logits = model.decode(z, roll)               # per-cell Bernoulli logits [batch, steps, 102]
    logits, mu, logvar = model(roll)             # the three steps at once
    new_roll = model.generate(z)                 # free-running, 0/1 [batch, steps, 102]

Encoder: a bidirectional GRU reads the 64 steps; its last forward state and its last backward
state (the one that has read the window backwards to step 0) are concatenated and two linear
heads give ``mu`` and ``logvar``.

Decoder, two kinds (``PianoRollVAEConfig.decoder``):

- ``"parallel"`` (the default): ``z`` sets the GRU's initial state (linear + tanh) and is also its
  input at every step; a linear layer turns each step's state into 102 logits. Every step is
  decoded from ``z`` alone, so the decoder must use the latent.
- ``"autoregressive"``: the same, plus the previous step's roll as input (teacher forcing: the
  true previous step during training; its own thresholded or sampled output in :meth:`generate`).
  Piano-roll notes last several steps, so "copy the previous step" already predicts most cells:
  with teacher forcing the decoder learns to copy and leans on ``z`` less, and free-running
  generation then drifts. Measured on one CPU thread, 150 s of training each (hidden 128, all
  pieces): the autoregressive decoder reached a far lower teacher-forced valid loss (2,021 vs
  3,077 weighted nats per window) but its free-running reconstructions were no better (best
  valid F1 0.28 vs 0.30, both at threshold 0.9), and it generates one step per GRU call. So the
  parallel decoder is the default; the autoregressive one is kept to show the difference.

Loss (:func:`pianoroll_vae_loss`): binary cross-entropy with ``pos_weight`` (under 2 % of the cells
are on, so an unweighted decoder learns to predict silence), summed over a window's cells,
averaged over the batch, plus ``beta`` times the KL to N(0, I). :func:`positive_weight` computes
the natural ``pos_weight`` = zeros / ones of a training set (about 58 for all the train windows).
The weight inflates the decoder's probabilities, so decode with a threshold above 0.5
(:func:`calibrated_threshold`, or one chosen on validation windows).

Style (:class:`StyleClassifier`, :func:`style_direction`, :func:`style_transfer`): a small MLP
tells chorale from folk latents; the direction between the two styles' mean latents moves a
window from one style towards the other before decoding.

Lesson: lessons/07_pianoroll_gru_vae.ipynb
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.config import config_from_dict
from coursekit.losses import kl_divergence

N_COLUMNS = 102  # two hands x MIDI 34..84, as in coursekit.data.pianoroll
DECODERS = ("parallel", "autoregressive")
STYLE_NAMES = ("chorale", "folk")  # style numbers of coursekit.data.pianoroll.PianoRolls


# ----------------------------------------------------------------------------- config
@dataclass
class PianoRollVAEConfig:
    """Everything that builds a :class:`PianoRollVAE`; stored beside the weights in each checkpoint.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """

    n_pitches: int = N_COLUMNS  # columns of a roll: 102 = right hand 34..84 then left hand 34..84
    steps: int = 64  # steps the decoder writes (sixteenth notes; 64 = four 4/4 bars)
    hidden: int = 256  # GRU state size of the encoder (per direction) and of the decoder
    latent_dim: int = 32  # size of z
    layers: int = 1  # stacked GRU layers in the encoder and in the decoder
    bidirectional: bool = True  # encoder reads the window both ways
    decoder: str = "parallel"  # "parallel" (z at every step) or "autoregressive" (z + previous step)

    def __post_init__(self) -> None:
        for name in ("n_pitches", "steps", "hidden", "latent_dim", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional={self.bidirectional!r} must be True or False.")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder={self.decoder!r} is not a decoder kind: use one of {list(DECODERS)}.")

    def to_dict(self) -> dict:
        """A JSON-ready dict of the fields, for checkpoints.

        Lesson: lessons/07_pianoroll_gru_vae.ipynb
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> PianoRollVAEConfig:
        """The config :meth:`to_dict` wrote; missing keys take their defaults.

        Raises:
            ValueError: for a key that is not a field, naming the fields.

        Lesson: lessons/07_pianoroll_gru_vae.ipynb
        """
        return config_from_dict(cls, values)


# ----------------------------------------------------------------------------- checks
def _check_roll(roll: torch.Tensor, n_pitches: int, name: str = "roll") -> None:
    """``roll`` must be a float Tensor [batch, steps, n_pitches] of values in [0, 1]."""
    if not isinstance(roll, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [batch, steps, {n_pitches}], got {type(roll).__name__}.")
    if not roll.is_floating_point():
        raise TypeError(f"{name} has dtype {roll.dtype}; the model needs float 0/1 cells: use {name}.float().")
    if roll.dim() == 2 and roll.shape[1] == n_pitches:
        raise ValueError(
            f"{name} has shape {list(roll.shape)}: one window without a batch dimension; use {name}.unsqueeze(0)."
        )
    if roll.dim() != 3 or roll.shape[2] != n_pitches or roll.shape[1] < 1:
        raise ValueError(
            f"{name} has shape {list(roll.shape)}; expected [batch, steps, {n_pitches}] "
            f"(a batch of PianoRolls windows, batch['roll'])."
        )


def _check_latent(z: torch.Tensor, latent_dim: int, name: str = "z") -> None:
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != latent_dim:
        shape = list(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"{name} has shape {shape}; expected [batch, {latent_dim}] (latent_dim={latent_dim}).")


def _check_probability(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(f"{name}={value!r} must be a probability strictly between 0 and 1 (e.g. 0.5).")


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device.type} but the model is on {device.type}: "
            f"create it with torch.Generator(device={str(device)!r}).manual_seed(seed)."
        )


def _rolls_of(batch: dict | torch.Tensor) -> torch.Tensor:
    """``batch["roll"]`` of a PianoRolls batch, or the tensor itself."""
    if isinstance(batch, dict):
        if "roll" not in batch:
            raise KeyError(f"the batch has keys {sorted(batch)} but no 'roll': pass PianoRolls batches.")
        return batch["roll"]
    return batch


# ----------------------------------------------------------------------------- the model
class PianoRollVAE(nn.Module):
    """GRU-VAE on piano-roll windows (architecture in the module docstring).

    Args:
        config: a :class:`PianoRollVAEConfig` (``build_pianoroll_vae`` also takes its dict).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """

    def __init__(self, config: PianoRollVAEConfig) -> None:
        super().__init__()
        self.config = c = config
        directions = 2 if c.bidirectional else 1
        self.encoder = nn.GRU(c.n_pitches, c.hidden, c.layers, batch_first=True, bidirectional=c.bidirectional)
        self.to_mu = nn.Linear(directions * c.hidden, c.latent_dim)
        self.to_logvar = nn.Linear(directions * c.hidden, c.latent_dim)
        self.to_state = nn.Linear(c.latent_dim, c.layers * c.hidden)
        inputs = c.latent_dim + (c.n_pitches if c.decoder == "autoregressive" else 0)
        self.decoder = nn.GRU(inputs, c.hidden, c.layers, batch_first=True)
        self.to_logits = nn.Linear(c.hidden, c.n_pitches)

    @property
    def device(self) -> torch.device:
        return self.to_mu.weight.device

    def encode(self, roll: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters of windows ``roll``.

        Args:
            roll: Tensor [batch, steps, n_pitches], float 0/1 cells (any number of steps).

        Returns:
            ``(mu, logvar)``, each Tensor [batch, latent_dim].

        Lesson: lessons/07_pianoroll_gru_vae.ipynb
        """
        _check_roll(roll, self.config.n_pitches)
        _, last = self.encoder(roll)  # [layers * directions, batch, hidden]
        directions = 2 if self.config.bidirectional else 1
        features = torch.cat(list(last[-directions:]), dim=1)  # top layer: forward (and backward) state
        return self.to_mu(features), self.to_logvar(features)

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``z ~ N(mu, exp(logvar))`` as ``mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``.

        Args:
            mu, logvar: Tensor [batch, latent_dim] each.
            generator: a ``torch.Generator`` on the model's device for reproducible noise.

        Returns:
            z: Tensor [batch, latent_dim].

        Lesson: lessons/07_pianoroll_gru_vae.ipynb
        """
        if mu.shape != logvar.shape:
            raise ValueError(f"mu has shape {list(mu.shape)} but logvar has {list(logvar.shape)}: they must match.")
        _check_generator(generator, mu.device)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def _initial_state(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder GRU state from ``z``: Tensor [layers, batch, hidden] in (-1, 1)."""
        c = self.config
        return torch.tanh(self.to_state(z)).view(len(z), c.layers, c.hidden).transpose(0, 1).contiguous()

    def decode(self, z: torch.Tensor, roll: torch.Tensor | None = None) -> torch.Tensor:
        """Per-cell Bernoulli logits for latents ``z``; ``torch.sigmoid`` of them are note probabilities.

        Args:
            z: Tensor [batch, latent_dim].
            roll: the autoregressive decoder's teacher-forcing target, Tensor [batch, steps,
                n_pitches] (its step ``t - 1`` is the input at step ``t``); decodes ``roll.shape[1]``
                steps. The parallel decoder ignores its values and decodes ``config.steps`` steps
                when it is None. For the autoregressive decoder without a target use :meth:`generate`.

        Returns:
            Tensor [batch, steps, n_pitches] of logits.

        Lesson: lessons/07_pianoroll_gru_vae.ipynb
        """
        c = self.config
        _check_latent(z, c.latent_dim)
        if roll is not None:
            _check_roll(roll, c.n_pitches)
            if len(roll) != len(z):
                raise ValueError(f"z has a batch of {len(z)} but roll has {len(roll)}: pass one latent per window.")
        steps = roll.shape[1] if roll is not None else c.steps
        inputs = z.unsqueeze(1).expand(-1, steps, -1)
        if c.decoder == "autoregressive":
            if roll is None:
                raise ValueError(
                    "the autoregressive decoder needs the target roll for teacher forcing: "
                    "call decode(z, roll), or model.generate(z) to decode without one."
                )
            previous = F.pad(roll[:, :-1], (0, 0, 1, 0))  # step t sees step t - 1; silence before step 0
            inputs = torch.cat([inputs, previous], dim=2)
        states, _ = self.decoder(inputs, self._initial_state(z))
        return self.to_logits(states)

    def forward(
        self, roll: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample one ``z`` per window, decode (teacher-forced for the autoregressive kind).

        Args:
            roll: Tensor [batch, steps, n_pitches], float 0/1 cells.
            generator: for the sampling noise; default the global generator.

        Returns:
            ``(logits [batch, steps, n_pitches], mu [batch, latent_dim], logvar [batch, latent_dim])``.

        Lesson: lessons/07_pianoroll_gru_vae.ipynb
        """
        mu, logvar = self.encode(roll)
        return self.decode(self.reparameterize(mu, logvar, generator), roll), mu, logvar

    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor,
        steps: int | None = None,
        threshold: float = 0.5,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode latents into 0/1 rolls without a target (free running), without gradients.

        Each cell is on when its probability exceeds ``threshold``, or, with ``sample=True``, with
        that probability (a Bernoulli draw). The autoregressive decoder feeds each step's 0/1 output
        back as the next step's input. A model trained with ``pos_weight = w`` overstates
        probabilities: a cell the data has on with probability q gets about ``w q / (w q + 1 - q)``,
        so the threshold 0.5 (or sampling) gives more notes than the data has; use
        :func:`calibrated_threshold` for a threshold that matches the data.

        Args:
            z: Tensor [batch, latent_dim], e.g. encoder means or draws from N(0, I).
            steps: steps to write; default ``config.steps``.
            threshold: probability above which a cell is on, in (0, 1); ignored with ``sample=True``.
            sample: draw each cell instead of thresholding.
            generator: a ``torch.Generator`` on the model's device for the draws.

        Returns:
            Tensor [batch, steps, n_pitches] of 0.0 / 1.0.

        Lesson: lessons/07_pianoroll_gru_vae.ipynb
        """
        c = self.config
        steps = c.steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps={steps!r} must be a whole number >= 1.")
        _check_probability(threshold, "threshold")
        _check_latent(z, c.latent_dim)
        _check_generator(generator, z.device)

        def pick(logits: torch.Tensor) -> torch.Tensor:
            probs = torch.sigmoid(logits)
            if sample:
                return torch.bernoulli(probs, generator=generator)
            return (probs > threshold).to(probs.dtype)

        if c.decoder == "parallel":
            return pick(self.decode(z, torch.zeros(len(z), steps, c.n_pitches, device=z.device, dtype=z.dtype)))
        state = self._initial_state(z)
        previous = torch.zeros(len(z), 1, c.n_pitches, device=z.device, dtype=z.dtype)
        out = []
        for _ in range(steps):
            output, state = self.decoder(torch.cat([z.unsqueeze(1), previous], dim=2), state)
            previous = pick(self.to_logits(output))
            out.append(previous)
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def reconstruct(self, roll: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        """Encode windows, take the posterior means and decode them free-running into 0/1 rolls.

        Args:
            roll: Tensor [batch, steps, n_pitches], float 0/1 cells.
            threshold: probability above which a cell is on.

        Returns:
            Tensor [batch, steps, n_pitches] of 0.0 / 1.0, as many steps as ``roll``.

        Lesson: lessons/07_pianoroll_gru_vae.ipynb
        """
        mu, _ = self.encode(roll)
        return self.generate(mu, steps=roll.shape[1], threshold=threshold)


def build_pianoroll_vae(config: PianoRollVAEConfig | dict | None = None) -> PianoRollVAE:
    """The piano-roll VAE a config describes (default config when None).

    Args:
        config: a :class:`PianoRollVAEConfig`, or the dict :meth:`PianoRollVAEConfig.to_dict`
            wrote (as stored in a checkpoint).

    Returns:
        The model, freshly initialised from the global torch seed.

    Example::

        model, ckpt = load_pretrained("pianoroll_vae", build=build_pianoroll_vae)

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if config is None:
        config = PianoRollVAEConfig()
    if isinstance(config, dict):
        config = PianoRollVAEConfig.from_dict(config)
    if not isinstance(config, PianoRollVAEConfig):
        raise TypeError(f"config must be a PianoRollVAEConfig or a dict of its fields, got {type(config).__name__}.")
    return PianoRollVAE(config)


# ----------------------------------------------------------------------------- loss
def positive_weight(dataset: Iterable, key: str = "roll") -> float:
    """The natural ``pos_weight`` of a set of rolls: the number of 0 cells over the number of 1 cells.

    With it, BCE weighs all the "note on" cells as much as all the "note off" cells together, so
    a decoder cannot win by predicting silence everywhere.

    Args:
        dataset: items that are Tensors [steps, n_pitches] (or [batch, steps, n_pitches]) or dicts
            holding one under ``key``: a PianoRolls dataset, a Subset of one, a DataLoader, a list.
        key: the dict key of the roll; default ``"roll"``.

    Returns:
        ``zeros / ones`` as a float (e.g. about 40 when 2.5 % of the cells are on).

    Raises:
        ValueError: when the rolls hold no 1 at all, or a value other than 0 and 1.

    Example::

        w = positive_weight(train_set)   # then pianoroll_vae_loss(model, batch, pos_weight=w)

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    ones, total = 0, 0
    for item in dataset:
        roll = item[key] if isinstance(item, dict) else item
        roll = torch.as_tensor(roll)
        if roll.numel() and not ((roll == 0) | (roll == 1)).all():
            raise ValueError(f"the rolls must hold only 0 and 1; found values in [{roll.min()}, {roll.max()}].")
        ones += int(roll.sum())
        total += roll.numel()
    if ones == 0:
        raise ValueError(f"the dataset's rolls ({total} cells) hold no 1: pos_weight = zeros / ones is undefined.")
    return (total - ones) / ones


def weighted_bce(logits: torch.Tensor, roll: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy with the "note on" cells weighted by ``pos_weight``: per-window sum, batch mean.

    Per cell: ``-(pos_weight * y * log sigmoid(l) + (1 - y) * log(1 - sigmoid(l)))``, in nats.

    Args:
        logits: Tensor [batch, steps, n_pitches] from the decoder.
        roll: Tensor of the same shape, the 0/1 target.
        pos_weight: weight of the 1 cells, > 0 (1.0: plain BCE; see :func:`positive_weight`).

    Returns:
        Tensor [] in (weighted) nats per window.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if logits.shape != roll.shape:
        raise ValueError(f"logits have shape {list(logits.shape)} but roll has {list(roll.shape)}: they must match.")
    if isinstance(pos_weight, bool) or not isinstance(pos_weight, numbers.Real) or not 0 < pos_weight < math.inf:
        raise ValueError(f"pos_weight={pos_weight!r} must be a positive number (1.0 for plain BCE).")
    weight = torch.tensor(float(pos_weight), dtype=logits.dtype, device=logits.device)
    cells = F.binary_cross_entropy_with_logits(logits, roll, pos_weight=weight, reduction="none")
    return cells.reshape(len(cells), -1).sum(dim=1).mean()


def calibrated_threshold(pos_weight: float) -> float:
    """The probability threshold that means "on more often than not" for a decoder trained with ``pos_weight``.

    Weighted BCE is minimised by ``p = w q / (w q + 1 - q)`` where ``q`` is the true probability
    that the cell is on and ``w = pos_weight``: the weight inflates every probability. ``q > 0.5``
    becomes ``p > w / (1 + w)``, so thresholding at 0.5 turns on every cell with ``q > 1 / (1 + w)``
    (with ``w`` about 58, cells on less than 2 % of the time), far more notes than the data has.

    Args:
        pos_weight: the weight the decoder was trained with, > 0.

    Returns:
        ``pos_weight / (1 + pos_weight)`` (0.5 for plain BCE).

    Example::

        model.generate(z, threshold=calibrated_threshold(ckpt["metrics"]["pos_weight"]))

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if isinstance(pos_weight, bool) or not isinstance(pos_weight, numbers.Real) or not 0 < pos_weight < math.inf:
        raise ValueError(f"pos_weight={pos_weight!r} must be a positive number (1.0 for plain BCE).")
    return float(pos_weight) / (1.0 + float(pos_weight))


def pianoroll_vae_loss(
    model: PianoRollVAE,
    batch: dict | torch.Tensor,
    beta: float = 1.0,
    pos_weight: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The training loss of a piano-roll VAE, in the form :func:`coursekit.train.fit` takes.

    ``loss = recon + beta * kl`` with ``recon`` = :func:`weighted_bce` of the (teacher-forced)
    logits and ``kl`` = KL of the posterior from N(0, I), each summed per window and averaged over
    the batch.

    Args:
        model: a :class:`PianoRollVAE`.
        batch: a PianoRolls batch ``{"roll": Tensor [batch, steps, n_pitches], ...}`` or the roll tensor.
        beta: weight of the KL term, >= 0.
        pos_weight: weight of the 1 cells in the BCE (see :func:`positive_weight`); 1.0 is plain BCE.
        generator: for the posterior sample; default the global generator.

    Returns:
        ``{"loss", "recon", "kl"}``, each a Tensor [] in nats per window.

    Example::

        loss_fn = functools.partial(pianoroll_vae_loss, pos_weight=positive_weight(train_set))
        fit(model, train_loader, loss_fn, optimizer, valid_loader=valid_loader)

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0 <= beta < math.inf:
        raise ValueError(f"beta={beta!r} must be a finite number >= 0 (1.0 gives the plain ELBO).")
    roll = _rolls_of(batch)
    logits, mu, logvar = model(roll, generator=generator)
    recon = weighted_bce(logits, roll, pos_weight)
    kl = kl_divergence(mu, logvar)
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


# ----------------------------------------------------------------------------- evaluation
def f1_counts(predicted: torch.Tensor, target: torch.Tensor) -> dict[str, int]:
    """True positives, false positives and false negatives of 0/1 rolls of the same shape.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if predicted.shape != target.shape:
        raise ValueError(f"predicted {list(predicted.shape)} and target {list(target.shape)} must have one shape.")
    p, t = predicted.bool(), target.bool()
    return {"tp": int((p & t).sum()), "fp": int((p & ~t).sum()), "fn": int((~p & t).sum())}


def f1_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from counts; 0.0 where a ratio has nothing to count (e.g. an all-zero guess).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


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
            roll = _rolls_of(batch).to(model.device)
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


# ----------------------------------------------------------------------------- style
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
        _check_latent(mu, self.latent_dim, "mu")
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
    _check_probability(held_out, "held_out")
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
        _check_latent(mu, latent_dim, "source_mu")
        z = mu + strength * direction.to(mu.device, mu.dtype)
        steps = roll.shape[1] if roll is not None else None
        return model.generate(z, steps=steps, threshold=threshold), z
    finally:
        model.train(was_training)
