"""Waveform discriminators and GAN objectives for fine-tuning lesson 05's decoder adversarially (source 004, 5.1).

Two families, each a set of small convolutional sub-discriminators that look at the waveform in
different ways, and their combination:

- multi-scale (MelGAN, Kumar et al. 2019): the same kind of 1-D network on the waveform at full
  rate, at half and at a quarter (average pooling between), so one judges fine detail and another
  the slower envelope;
- multi-period (HiFi-GAN, Kong et al. 2020): for each period ``p`` (2, 3, 5, 7, 11 samples) the waveform
  is folded into ``[samples / p, p]`` and 2-D convolutions run down the columns only, so each
  column holds every ``p``-th sample: a network that hears the signal's periodic structure.

Every sub-discriminator returns its score map (one logit per position) and its intermediate feature
maps, so the decoder can also be trained to match the real audio's features (feature matching).

Shapes (default settings)::

    x        [batch, 1, samples]
    scores   list (one per sub-discriminator) of Tensor [batch, 1, positions] or [batch, 1, positions, p]
    features list (one per sub-discriminator) of lists of Tensor

Objectives (``OBJECTIVES``): ``"hinge"`` (the discriminator pushes real scores above +1 and fake ones below
-1; the decoder raises its fakes' scores) and ``"nonsaturating"`` (the original GAN's cross-entropy with the
decoder maximising ``log D(fake)``).

Lesson: lessons/09_bonus.ipynb
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from coursekit.config import as_config, config_from_dict

KINDS = ("msd", "mpd", "both")
OBJECTIVES = ("hinge", "nonsaturating")
Judgement = tuple[list[torch.Tensor], list[list[torch.Tensor]]]


@dataclass
class DiscriminatorConfig:
    """Everything that builds a :class:`Discriminator`; stored beside its weights.

    Lesson: lessons/09_bonus.ipynb
    """

    kind: str = "both"  # "msd" (multi-scale), "mpd" (multi-period) or "both"
    channels: int = 16  # width of the first layer; later layers have 2x and 4x
    scales: int = 3  # multi-scale: full rate, 1/2, 1/4 ...
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)  # multi-period

    def __post_init__(self) -> None:
        self.periods = tuple(self.periods)
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}: use one of {list(KINDS)}.")
        for name in ("channels", "scales"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if self.channels % 4:
            raise ValueError(f"channels={self.channels} must be divisible by 4 (grouped convolutions), e.g. 16.")
        if not self.periods or any(isinstance(p, bool) or not isinstance(p, int) or p < 2 for p in self.periods):
            raise ValueError(f"periods={self.periods!r}: give whole numbers >= 2, e.g. (2, 3, 5, 7, 11).")

    def to_dict(self) -> dict:
        """A JSON-ready dict, for checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> DiscriminatorConfig:
        """The inverse of :meth:`to_dict`."""
        return config_from_dict(cls, values)


class ScaleDiscriminator(nn.Module):
    """One MelGAN sub-discriminator: 1-D convolutions, two of them strided by 4 and grouped.

    ``x [batch, 1, samples]`` -> scores ``[batch, 1, samples / 16]`` and four feature maps.

    Lesson: lessons/09_bonus.ipynb
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.layers = nn.ModuleList([
            weight_norm(nn.Conv1d(1, c, 15, padding=7)),
            weight_norm(nn.Conv1d(c, 2 * c, 41, stride=4, padding=20, groups=4)),
            weight_norm(nn.Conv1d(2 * c, 4 * c, 41, stride=4, padding=20, groups=4)),
            weight_norm(nn.Conv1d(4 * c, 4 * c, 5, padding=2)),
        ])  # fmt: skip
        self.score = weight_norm(nn.Conv1d(4 * c, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return self.score(x), features


class PeriodDiscriminator(nn.Module):
    """One HiFi-GAN sub-discriminator: the waveform folded into columns of every ``period``-th sample.

    ``x [batch, 1, samples]`` is padded (reflecting its end) to a multiple of ``period``, viewed as
    ``[batch, 1, samples / period, period]``, and convolved with ``(k, 1)`` kernels, which never mix
    columns. Scores ``[batch, 1, about samples / (27 period), period]`` and four feature maps.

    Lesson: lessons/09_bonus.ipynb
    """

    def __init__(self, period: int, channels: int) -> None:
        super().__init__()
        self.period, c = period, channels
        widths = (1, c, 2 * c, 4 * c)
        pairs = zip(widths[:-1], widths[1:], strict=True)
        strided = [nn.Conv2d(a, b, (5, 1), stride=(3, 1), padding=(2, 0)) for a, b in pairs]
        self.layers = nn.ModuleList(
            [weight_norm(conv) for conv in strided]
            + [weight_norm(nn.Conv2d(4 * c, 4 * c, (5, 1), padding=(2, 0)))]
        )
        self.score = weight_norm(nn.Conv2d(4 * c, 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        extra = -x.shape[-1] % self.period
        if extra:
            x = F.pad(x, (0, extra), mode="reflect")
        x = x.view(x.shape[0], 1, -1, self.period)
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return self.score(x), features


class Discriminator(nn.Module):
    """The chosen sub-discriminators (see the module docstring), judged together.

    Example::

        disc = build_discriminator({"kind": "msd"})
        scores, features = disc(x)               # x [b, 1, 16000]: 3 score maps, 3 lists of 4 maps

    Lesson: lessons/09_bonus.ipynb
    """

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = c = config
        self.scale_discriminators = nn.ModuleList(
            [ScaleDiscriminator(c.channels) for _ in range(c.scales)] if c.kind in ("msd", "both") else []
        )
        self.period_discriminators = nn.ModuleList(
            [PeriodDiscriminator(p, c.channels) for p in c.periods] if c.kind in ("mpd", "both") else []
        )

    def forward(self, x: torch.Tensor) -> Judgement:
        """``x [batch, 1, samples]`` -> ``(scores, features)``, one entry per sub-discriminator.

        Raises:
            ValueError: ``x`` is not float audio ``[batch, 1, samples]``.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 3 or x.shape[1] != 1:
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x has shape {shape}; expected float audio [batch, 1, samples] (x.view(batch, 1, -1)).")
        scores, features = [], []
        scaled = x
        for i, sub in enumerate(self.scale_discriminators):
            if i:
                scaled = F.avg_pool1d(scaled, 4, stride=2, padding=1, count_include_pad=False)
            score, feats = sub(scaled)
            scores.append(score)
            features.append(feats)
        for sub in self.period_discriminators:
            score, feats = sub(x)
            scores.append(score)
            features.append(feats)
        return scores, features


def build_discriminator(config: DiscriminatorConfig | dict | None = None) -> Discriminator:
    """A :class:`Discriminator` from a config or the dict a checkpoint stores (default: both families).

    Lesson: lessons/09_bonus.ipynb
    """
    return Discriminator(as_config(DiscriminatorConfig, config))


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r}: use one of {list(OBJECTIVES)}.")


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor], objective: str = "hinge") -> torch.Tensor:
    """What the discriminator minimises, summed over sub-discriminators (each a mean over its positions).

    ``"hinge"``: ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``, zero once real scores are above
    +1 and fake ones below -1. ``"nonsaturating"``: the cross-entropy of telling real (label 1) from
    fake (label 0), ``mean(softplus(-D(real))) + mean(softplus(D(fake)))``: 2 log 2 = 1.386 per
    sub-discriminator when every score is 0 (the discriminator cannot tell).

    Lesson: lessons/09_bonus.ipynb
    """
    _check_objective(objective)
    if objective == "hinge":
        return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake, strict=True))
    return sum(F.softplus(-r).mean() + F.softplus(f).mean() for r, f in zip(real, fake, strict=True))


def generator_loss(fake: list[torch.Tensor], objective: str = "hinge") -> torch.Tensor:
    """What the decoder minimises to fool the discriminator, summed over sub-discriminators.

    ``"hinge"``: ``-mean(D(fake))``. ``"nonsaturating"``: ``mean(softplus(-D(fake)))`` = ``-log sigmoid(D(fake))``,
    whose gradient stays large while the discriminator is winning (the original minimax form
    ``log(1 - sigmoid(D(fake)))`` saturates there).

    Lesson: lessons/09_bonus.ipynb
    """
    _check_objective(objective)
    if objective == "hinge":
        return sum(-f.mean() for f in fake)
    return sum(F.softplus(-f).mean() for f in fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean absolute difference between the real and the fake audio's feature maps, averaged over all maps.

    The real features are detached: only the decoder is pulled towards them (MelGAN's feature matching).

    Lesson: lessons/09_bonus.ipynb
    """
    pairs = [(r, f) for rs, fs in zip(real, fake, strict=True) for r, f in zip(rs, fs, strict=True)]
    return sum((r.detach() - f).abs().mean() for r, f in pairs) / len(pairs)
