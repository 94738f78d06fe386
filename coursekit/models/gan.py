"""A GAN on spectrogram features (SpecGAN style, source 001): a generator from noise to a feature image
and a critic that scores images, trained against each other with one of two objectives.

- ``"wgan-gp"``: the Wasserstein GAN with gradient penalty (Gulrajani et al. 2017): the critic
  minimises ``D(fake) - D(real) + lambda * (|grad D(x_mix)| - 1)^2`` with ``lambda = 10``, the
  generator minimises ``-D(fake)``; the critic takes ``n_critic`` steps per generator step.
- ``"smoothed"``: the original non-saturating GAN with source 001's label smoothing: real images are
  labelled 0.9 plus noise, fakes 0 plus noise, so the discriminator is never fully sure.

Shapes (default settings)::

    z       [batch, 64]
    image   [batch, 1, 256, 64]   lesson 04's features of a 1 s note, values in (0, 1)
    score   [batch]               the critic's (or discriminator's logit)

Lesson: lessons/08_model_comparison.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.config import as_config, config_from_dict

OBJECTIVES = ("wgan-gp", "smoothed")


@dataclass
class GANConfig:
    """Everything that builds a :class:`GAN`; stored beside its weights.

    Args:
        n_freq, n_frames: the feature image (divisible by ``2 ** len(channels)``).
        z_dim: size of the generator's noise.
        channels: the critic's channels, layer by layer (stride-2 convolutions); the generator
            mirrors them, from ``channels[-1]`` at the smallest size up to one channel.
    """

    n_freq: int = 256
    n_frames: int = 64
    z_dim: int = 64
    channels: tuple[int, ...] = (8, 16, 32, 64)

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        for name in ("n_freq", "n_frames", "z_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels={self.channels!r}: one whole number >= 1 per layer, e.g. (8, 16, 32, 64).")
        scale = 2 ** len(self.channels)
        if self.n_freq % scale or self.n_frames % scale:
            raise ValueError(f"n_freq={self.n_freq} and n_frames={self.n_frames} must be divisible by {scale}.")

    @property
    def bottleneck(self) -> tuple[int, int, int]:
        scale = 2 ** len(self.channels)
        return self.channels[-1], self.n_freq // scale, self.n_frames // scale

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GANConfig:
        return config_from_dict(cls, values)


class GAN(nn.Module):
    """``generator``: z -> linear -> transposed convolutions (ReLU) -> sigmoid image;
    ``critic``: stride-2 convolutions (LeakyReLU 0.2, no batch norm, which the gradient penalty forbids)
    -> linear -> one score per image.

    Lesson: lessons/08_model_comparison.ipynb
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        flat = math.prod(config.bottleneck)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(config.channels[::-1], (*config.channels[-2::-1], 1), strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.generator = nn.Sequential(nn.Linear(config.z_dim, flat), nn.ReLU(), nn.Unflatten(1, config.bottleneck),
                                       *layers[:-1], nn.Sigmoid())  # fmt: skip
        layers, c_in = [], 1
        for c_out in config.channels:
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.critic = nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, 1))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``[batch, 1, n_freq, n_frames]`` from noise ``z [batch, z_dim]``."""
        if z.dim() != 2 or z.shape[1] != self.config.z_dim:
            raise ValueError(f"z must be [batch, {self.config.z_dim}], got {list(z.shape)}.")
        return self.generator(z)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """The critic's score of each image: Tensor [batch] (higher: more real)."""
        expected = (1, self.config.n_freq, self.config.n_frames)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must be [batch, {', '.join(map(str, expected))}], got {list(images.shape)}.")
        return self.critic(images).squeeze(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new images from ``z ~ N(0, I)``, in eval mode."""
        self.eval()
        return self.generate(torch.randn(n, self.config.z_dim, generator=generator))


def build_gan(config: GANConfig | dict | None = None) -> GAN:
    """A :class:`GAN` from a config, its dict (as stored in checkpoints) or the defaults.

    Lesson: lessons/08_model_comparison.ipynb
    """
    return GAN(as_config(GANConfig, config))


def gradient_penalty(model: GAN, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None):
    """``mean((|grad_x D(x)|_2 - 1)^2)`` at random points ``x`` on the lines between real and fake images."""
    alpha = torch.rand(len(real), 1, 1, 1, generator=generator)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad = torch.autograd.grad(model.score(mixed).sum(), mixed, create_graph=True)[0]
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def critic_loss(
    model: GAN, real: torch.Tensor, fake: torch.Tensor, objective: str = "wgan-gp", penalty: float = 10.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """The critic's (discriminator's) loss on a batch of real and generated images.

    ``"wgan-gp"``: ``mean D(fake) - mean D(real) + penalty * gradient_penalty``; its negative without
    the penalty, ``"wasserstein"``, estimates the distance between the two sets (falls as the
    generator improves). ``"smoothed"``: binary cross-entropy with real labels ``0.9 + U(-0.05, 0.05)``
    and fake labels ``U(0, 0.1)`` (source 001's label smoothing).

    Returns ``{"loss", "wasserstein"}`` or ``{"loss"}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r}: choose one of {OBJECTIVES}.")
    fake = fake.detach()
    real_score, fake_score = model.score(real), model.score(fake)
    if objective == "wgan-gp":
        wasserstein = real_score.mean() - fake_score.mean()
        gp = gradient_penalty(model, real, fake, generator)
        return {"loss": -wasserstein + penalty * gp, "wasserstein": wasserstein.detach(), "penalty": gp.detach()}
    real_label = 0.9 + 0.1 * (torch.rand(len(real), generator=generator) - 0.5)
    fake_label = 0.1 * torch.rand(len(fake), generator=generator)
    loss = F.binary_cross_entropy_with_logits(real_score, real_label) + F.binary_cross_entropy_with_logits(
        fake_score, fake_label)  # fmt: skip
    return {"loss": loss}


def generator_loss(model: GAN, fake: torch.Tensor, objective: str = "wgan-gp") -> torch.Tensor:
    """The generator's loss: ``-mean D(fake)`` (WGAN) or ``BCE(D(fake), 1)`` (non-saturating GAN).

    Lesson: lessons/08_model_comparison.ipynb
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r}: choose one of {OBJECTIVES}.")
    score = model.score(fake)
    if objective == "wgan-gp":
        return -score.mean()
    return F.binary_cross_entropy_with_logits(score, torch.ones_like(score))
