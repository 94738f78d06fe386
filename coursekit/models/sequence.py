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
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.checks import check_probability
from coursekit.config import as_config, config_from_dict
from coursekit.losses import kl_divergence, weighted_bce
from coursekit.models import check_generator, reparameterize

N_COLUMNS = 102  # two hands x MIDI 34..84, as in coursekit.data.pianoroll


DECODERS = ("parallel", "autoregressive")


STYLE_NAMES = ("chorale", "folk")  # style numbers of coursekit.data.pianoroll.PianoRolls


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


def check_latent(z: torch.Tensor, latent_dim: int, name: str = "z") -> None:
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != latent_dim:
        shape = list(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"{name} has shape {shape}; expected [batch, {latent_dim}] (latent_dim={latent_dim}).")



def rolls_of(batch: dict | torch.Tensor) -> torch.Tensor:
    """``batch["roll"]`` of a PianoRolls batch, or the tensor itself."""
    if isinstance(batch, dict):
        if "roll" not in batch:
            raise KeyError(f"the batch has keys {sorted(batch)} but no 'roll': pass PianoRolls batches.")
        return batch["roll"]
    return batch


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
        return reparameterize(mu, logvar, generator)

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
        check_latent(z, c.latent_dim)
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
        check_probability(threshold, "threshold")
        check_latent(z, c.latent_dim)
        check_generator(generator, z.device)

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
    return PianoRollVAE(as_config(PianoRollVAEConfig, config))


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
    roll = rolls_of(batch)
    logits, mu, logvar = model(roll, generator=generator)
    recon = weighted_bce(logits, roll, pos_weight)
    kl = kl_divergence(mu, logvar)
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}
