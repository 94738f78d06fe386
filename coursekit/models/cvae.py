"""A conditional VAE on spectrogram features: ask for a family and a pitch, get a note (source 001).

Source 001 trained one VAE per instrument and called it conditional. Here one model learns every
family at once: the encoder and the decoder both receive the condition (a one-hot family and a
one-hot MIDI key), so the latent only has to hold what the condition does not say (loudness,
envelope, timbre within the family). To generate, draw ``z ~ N(0, I)`` and choose the condition.

Shapes (default settings)::

    features   [batch, 1, 256, 64]   lesson 04's features of 1 s notes (values in [0, 1])
    family     [batch]               int64, index into coursekit.data.nsynth.FAMILIES
    pitch      [batch]               int64, MIDI key 24 to 84
    mu, logvar [batch, 16]

Encoder: four stride-2 3x3 convolutions (channels 16-32-64-64, ReLU) to ``[64, 16, 4]``, flattened,
the condition appended, a linear layer to ``mu`` and ``logvar``. Decoder: ``[z, condition]``, a linear
layer to ``[64, 16, 4]``, four stride-2 transposed convolutions back, a sigmoid.

Lesson: lessons/08_model_comparison.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.config import as_config, config_from_dict
from coursekit.losses import kl_normal
from coursekit.models import reparameterize


@dataclass
class ConditionalVAEConfig:
    """Everything that builds a :class:`ConditionalVAE`; stored beside its weights.

    Args:
        n_freq, n_frames: the feature image (both divisible by ``2 ** len(channels)``).
        channels: channels of the encoder's stride-2 convolutions (the decoder mirrors them).
        latent_dim: size of ``z``.
        n_families: families in the one-hot condition.
        lowest_pitch, highest_pitch: MIDI keys of the one-hot pitch condition (inclusive);
            ``use_pitch=False`` conditions on the family alone.
    """

    n_freq: int = 256
    n_frames: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 64)
    latent_dim: int = 16
    n_families: int = 11
    lowest_pitch: int = 24
    highest_pitch: int = 84
    use_pitch: bool = True

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        for name in ("n_freq", "n_frames", "latent_dim", "n_families"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels={self.channels!r}: one whole number >= 1 per layer, e.g. (16, 32, 64, 64).")
        scale = 2 ** len(self.channels)
        if self.n_freq % scale or self.n_frames % scale:
            raise ValueError(f"n_freq={self.n_freq} and n_frames={self.n_frames} must be divisible by {scale} "
                             f"(2 to the power of {len(self.channels)} layers).")  # fmt: skip
        if not 0 <= self.lowest_pitch <= self.highest_pitch <= 127:
            raise ValueError(f"lowest_pitch={self.lowest_pitch}, highest_pitch={self.highest_pitch}: MIDI keys "
                             "0 <= lowest <= highest <= 127.")  # fmt: skip

    @property
    def condition_dim(self) -> int:
        """Size of the condition vector: families, plus keys when ``use_pitch``."""
        return self.n_families + (self.highest_pitch - self.lowest_pitch + 1 if self.use_pitch else 0)

    @property
    def bottleneck(self) -> tuple[int, int, int]:
        scale = 2 ** len(self.channels)
        return self.channels[-1], self.n_freq // scale, self.n_frames // scale

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ConditionalVAEConfig:
        return config_from_dict(cls, values)


class ConditionalVAE(nn.Module):
    """``q(z | x, c)`` and ``p(x | z, c)`` on feature images, with ``c`` = family (and pitch).

    Lesson: lessons/08_model_comparison.ipynb
    """

    def __init__(self, config: ConditionalVAEConfig) -> None:
        super().__init__()
        self.config = config
        layers, c_in = [], 1
        for c_out in config.channels:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
            c_in = c_out
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        flat = math.prod(config.bottleneck)
        self.to_latent = nn.Linear(flat + config.condition_dim, 2 * config.latent_dim)
        self.from_latent = nn.Linear(config.latent_dim + config.condition_dim, flat)
        layers = []
        for c_in, c_out in zip(config.channels[::-1], (*config.channels[-2::-1], 1), strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*layers[:-1], nn.Sigmoid())

    def condition(self, family: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """The condition vector ``[batch, condition_dim]``: one-hot family, then one-hot key when ``use_pitch``."""
        c = self.config
        family = torch.as_tensor(family).long().view(-1)
        if family.min() < 0 or family.max() >= c.n_families:
            raise ValueError(f"family must hold indices 0 to {c.n_families - 1}, got {family.tolist()[:8]}.")
        parts = [F.one_hot(family, c.n_families).float()]
        if c.use_pitch:
            if pitch is None:
                raise ValueError("this model is conditioned on pitch too: pass pitch, MIDI keys [batch].")
            pitch = torch.as_tensor(pitch).long().view(-1)
            if pitch.min() < c.lowest_pitch or pitch.max() > c.highest_pitch or len(pitch) != len(family):
                raise ValueError(f"pitch must hold one MIDI key from {c.lowest_pitch} to {c.highest_pitch} per "
                                 f"family, got {pitch.tolist()[:8]}.")  # fmt: skip
            parts.append(F.one_hot(pitch - c.lowest_pitch, c.highest_pitch - c.lowest_pitch + 1).float())
        return torch.cat(parts, dim=1)

    def encode(self, features: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mu, logvar`` ``[batch, latent_dim]`` of features ``[batch, 1, n_freq, n_frames]``."""
        expected = (1, self.config.n_freq, self.config.n_frames)
        if features.dim() != 4 or tuple(features.shape[1:]) != expected:
            raise ValueError(f"features must be [batch, {', '.join(map(str, expected))}], got {list(features.shape)}.")
        mu, logvar = self.to_latent(torch.cat([self.encoder(features), condition], dim=1)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Feature images ``[batch, 1, n_freq, n_frames]`` in (0, 1) from ``z [batch, latent_dim]``."""
        h = self.from_latent(torch.cat([z, condition], dim=1)).relu()
        return self.decoder(h.view(-1, *self.config.bottleneck))

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(reconstruction, mu, logvar)``, decoding one sample of the posterior."""
        mu, logvar = self.encode(features, condition)
        return self.decode(reparameterize(mu, logvar), condition), mu, logvar

    @torch.no_grad()
    def generate(
        self, family: torch.Tensor, pitch: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """New feature images for the asked families (and keys): ``z ~ N(0, I)``, decoded in eval mode."""
        self.eval()
        condition = self.condition(family, pitch)
        z = torch.randn(len(condition), self.config.latent_dim, generator=generator)
        return self.decode(z, condition)


def build_conditional_vae(config: ConditionalVAEConfig | dict | None = None) -> ConditionalVAE:
    """A :class:`ConditionalVAE` from a config, its dict (as stored in checkpoints) or the defaults.

    Lesson: lessons/08_model_comparison.ipynb
    """
    return ConditionalVAE(as_config(ConditionalVAEConfig, config))


def cvae_loss(model: ConditionalVAE, batch: dict, beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Negative ELBO per note: binary cross-entropy summed over the image's bins plus ``beta`` x KL (nats).

    ``batch`` is ``{"features": [batch, 1, n_freq, n_frames], "family": [batch], "pitch": [batch]}``.
    Returns ``{"loss", "recon", "kl"}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    condition = model.condition(batch["family"], batch.get("pitch"))
    recon, mu, logvar = model(batch["features"], condition)
    bce = F.binary_cross_entropy(recon, batch["features"], reduction="sum") / len(recon)
    kl = kl_normal(mu, logvar).sum(dim=1).mean()
    return {"loss": bce + beta * kl, "recon": bce, "kl": kl}
