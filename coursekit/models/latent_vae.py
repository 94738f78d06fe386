"""The second level of source 004's hierarchy: a temporal VAE on the latent trajectories of lesson 05's model.

Lesson 05's waveform VAE turns a loop into a trajectory: ``[16, frames]``, 125 frames a second.
Its prior is N(0, I) *frame by frame*, so sampling it gives a new random frame every 8 ms and no
loop. This model learns the trajectories themselves: a stack of stride-2 convolutions shrinks
``frames`` to ``points`` (down to a single point per loop), a latent of ``latent_channels``
numbers per point has a N(0, I) prior, and transposed convolutions grow it back to a
trajectory. The decoder predicts a Gaussian per trajectory value, a mean and a log-variance.

Two objectives (source 004, section 4.2), both in nats per loop, see :func:`latent_vae_loss`:

1. ``"fixed"``: the first model's trajectory (its posterior mean or one sample of it) is data,
   scored by the Gaussian log-likelihood of the prediction;
2. ``"posterior"``: the first model's whole posterior ``N(mu1, sigma1)`` is the target, scored by
   ``KL(N(mu1, sigma1) || N(mu1_hat, sigma1_hat))``: a frame the first model was unsure of costs
   little when missed.

Shapes (default settings)::

    trajectory   [batch, 16, 512]          512 frames = 65,536 samples = 4.1 s at 16 kHz
    mu, logvar   [batch, 64, points]        points = 512 / 2 ** stages
    prediction   [batch, 16, 512] twice     mean and log-variance

Lesson: lessons/06_latent_vae.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from coursekit.checks import check_whole
from coursekit.config import as_config, config_from_dict
from coursekit.losses import gaussian_nll, kl_divergence, kl_gaussians
from coursekit.models import reparameterize
from coursekit.models.audio_vae import ResidualBlock

OBJECTIVES = ("fixed", "posterior")
LOGVAR_RANGE = (-10.0, 4.0)  # the decoder's log-variances are squashed into this range (stable NLL and KL)


@dataclass
class LatentVAEConfig:
    """Everything that builds a :class:`LatentVAE`; stored beside the weights in checkpoints.

    Lesson: lessons/06_latent_vae.ipynb
    """

    in_channels: int = 16  # channels of the first model's trajectories
    frames: int = 512  # frames per trajectory (a power-of-two multiple of points)
    points: int = 1  # latent points per trajectory: 1 is one vector per loop
    latent_channels: int = 64  # numbers per latent point
    width: int = 32  # channels of every hidden layer

    def __post_init__(self) -> None:
        for name in ("in_channels", "frames", "points", "latent_channels", "width"):
            check_whole(getattr(self, name), name)
        ratio = self.frames // self.points
        if self.frames % self.points or ratio & (ratio - 1):
            raise ValueError(
                f"frames={self.frames}, points={self.points}: frames / points must be a power of two "
                f"(e.g. points={self.frames // 2 ** int(math.log2(max(1, ratio)))})."
            )

    @property
    def stages(self) -> int:
        """Stride-2 stages between ``frames`` and ``points``: ``log2(frames / points)``."""
        return int(math.log2(self.frames // self.points))

    def to_dict(self) -> dict:
        """A JSON-ready dict, for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> LatentVAEConfig:
        """The config :meth:`to_dict` wrote; raises ValueError naming unknown keys."""
        return config_from_dict(cls, values)


class LatentVAE(nn.Module):
    """A convolutional VAE over trajectories ``[batch, in_channels, frames]`` (see the module docstring).

    Example::

        model = build_latent_vae(LatentVAEConfig(points=1))
        mean, logvar, mu, logvar_z = model(trajectory)      # trajectory [b, 16, 512]
        new = model.sample(4)                               # [4, 16, 512], the predicted means

    Lesson: lessons/06_latent_vae.ipynb
    """

    def __init__(self, config: LatentVAEConfig) -> None:
        super().__init__()
        self.config = c = config
        encoder: list[nn.Module] = [nn.Conv1d(c.in_channels, c.width, 3, padding=1)]
        for _ in range(c.stages):
            encoder += [ResidualBlock(c.width, (1, 3)), nn.LeakyReLU(0.2), nn.Conv1d(c.width, c.width, 4, 2, 1)]
        encoder += [nn.LeakyReLU(0.2), nn.Conv1d(c.width, 2 * c.latent_channels, 1)]
        self.encoder = nn.Sequential(*encoder)
        decoder: list[nn.Module] = [nn.Conv1d(c.latent_channels, c.width, 1)]
        for _ in range(c.stages):
            up = nn.ConvTranspose1d(c.width, c.width, 4, 2, 1)
            decoder += [nn.LeakyReLU(0.2), up, ResidualBlock(c.width, (1, 3))]
        decoder += [nn.LeakyReLU(0.2), nn.Conv1d(c.width, 2 * c.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)

    def encode(self, trajectory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each ``[batch, latent_channels, points]``, of ``trajectory [batch, in_channels, frames]``.

        Lesson: lessons/06_latent_vae.ipynb
        """
        c = self.config
        if trajectory.dim() != 3 or tuple(trajectory.shape[1:]) != (c.in_channels, c.frames):
            raise ValueError(
                f"trajectory has shape {list(trajectory.shape)}; expected [batch, {c.in_channels}, {c.frames}] "
                "(the first model's mu for loops of frames * 128 samples)."
            )
        mu, logvar = self.encoder(trajectory).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted ``(mean, logvar)`` of the trajectory, each ``[batch, in_channels, frames]``, from ``z``.

        Lesson: lessons/06_latent_vae.ipynb
        """
        c = self.config
        if z.dim() != 3 or tuple(z.shape[1:]) != (c.latent_channels, c.points):
            raise ValueError(f"z has shape {list(z.shape)}; expected [batch, {c.latent_channels}, {c.points}].")
        mean, logvar = self.decoder(z).chunk(2, dim=1)
        low, high = LOGVAR_RANGE
        return mean, low + (high - low) * torch.sigmoid(logvar)

    def forward(
        self, trajectory: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean, logvar, mu, logvar_z)``: encode, draw one posterior sample, decode."""
        mu, logvar_z = self.encode(trajectory)
        mean, logvar = self.decode(reparameterize(mu, logvar_z, generator))
        return mean, logvar, mu, logvar_z

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``n`` new trajectories: prior draws (scaled by ``temperature``) decoded to their predicted means.

        Lesson: lessons/06_latent_vae.ipynb
        """
        c = self.config
        device = next(self.parameters()).device
        z = temperature * torch.randn(n, c.latent_channels, c.points, generator=generator, device=device)
        return self.decode(z)[0]


def latent_vae_loss(
    model: LatentVAE,
    batch: dict,
    objective: str = "posterior",
    beta: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The negative ELBO of a batch of trajectories, in nats per loop, in the form ``fit`` takes.

    Args:
        batch: ``{"mu": Tensor [batch, in_channels, frames], "logvar": the same shape}``, the first
            model's posterior; ``"fixed"`` also reads ``"target"`` when present (e.g. one sample of
            that posterior), else uses ``"mu"``.
        objective: ``"fixed"`` (Gaussian NLL of the target) or ``"posterior"`` (KL from the first
            model's posterior to the prediction, summed over channels and frames).
        beta: weight of this model's own KL to its prior.

    Returns:
        ``{"loss": recon + beta * kl, "recon", "kl", "mse"}`` (``mse``: the predicted mean against
        the first model's mean, per value), each a Tensor [].

    Lesson: lessons/06_latent_vae.ipynb
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r}: choose one of {OBJECTIVES}.")
    mu1, logvar1 = batch["mu"], batch["logvar"]
    encoded = batch.get("target", mu1) if objective == "fixed" else mu1
    mean, logvar, mu, logvar_z = model(encoded, generator)
    if objective == "fixed":
        recon = gaussian_nll(batch.get("target", mu1), mean, logvar)
    else:
        recon = kl_gaussians(mu1, logvar1, mean, logvar).flatten(1).sum(dim=1).mean()
    kl = kl_divergence(mu, logvar_z)
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "mse": (mean - mu1).pow(2).mean()}


def build_latent_vae(config: LatentVAEConfig | dict | None = None) -> LatentVAE:
    """A :class:`LatentVAE` from a config or the dict a checkpoint stores (default: ``LatentVAEConfig()``).

    Lesson: lessons/06_latent_vae.ipynb
    """
    return LatentVAE(as_config(LatentVAEConfig, config))
