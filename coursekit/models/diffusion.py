"""Latent diffusion: a denoising diffusion model (DDPM, Ho et al. 2020) of lesson 05's latent trajectories.

Source 004's bonus proposes replacing lesson 06's second VAE with a diffusion model. The forward
process blurs a trajectory ``x0`` (standardised per channel) into noise in ``T`` steps,

    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,    eps ~ N(0, I),

with the cosine schedule of Nichol and Dhariwal (2021): ``abar_t = f(t) / f(0)``,
``f(t) = cos^2(pi / 2 (t / T + s) / (1 + s))``, ``s = 0.008``. A network learns to undo it: given
``x_t`` and ``t`` it predicts ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0`` (v-prediction, Salimans and Ho
2022), from which both ``x0`` and ``eps`` follow. Sampling starts from pure noise and steps back with
DDIM (Song et al. 2021) over any number of steps: ``eta = 1`` with all ``T`` steps is DDPM's ancestral
sampler, ``eta = 0`` with few steps the deterministic shortcut.

The network (:class:`TrajectoryDenoiser`) is a residual stack of dilated 1-D convolutions over the
frames (dilations doubling to cover the whole trajectory), each block told the step ``t`` through a
scale and shift of its features (FiLM) computed from a sinusoidal embedding.

Shapes (default settings)::

    x0, x_t, v   [batch, 16, 512]     latent channels x frames (4.1 s at 125 frames a second)
    t            [batch]              whole numbers 1 .. T

Lesson: lessons/09_bonus.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.config import as_config, config_from_dict


def cosine_alpha_bar(steps: int, s: float = 0.008) -> torch.Tensor:
    """``abar_t`` for ``t = 0 .. steps`` (Tensor [steps + 1], float64): 1 at ``t = 0``, falling to 0 at ``steps``.

    Each step's ``beta_t = 1 - abar_t / abar_(t-1)`` is capped at 0.999 (the schedule's last step would
    otherwise be 1), as in Nichol and Dhariwal (2021).

    Lesson: lessons/09_bonus.ipynb
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a whole number >= 1, e.g. 1000.")
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    betas = (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


@dataclass
class DiffusionConfig:
    """Everything that builds a :class:`TrajectoryDenoiser`; stored beside its weights.

    Lesson: lessons/09_bonus.ipynb
    """

    latent_channels: int = 16
    channels: int = 64  # width of the residual stack
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)  # one residual block each
    steps: int = 1000  # T, the forward process's steps

    def __post_init__(self) -> None:
        self.dilations = tuple(self.dilations)
        for name in ("latent_channels", "channels", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if not self.dilations or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in self.dilations):
            raise ValueError(f"dilations={self.dilations!r}: whole numbers >= 1, e.g. (1, 2, 4, 8).")

    def to_dict(self) -> dict:
        """A JSON-ready dict, for checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> DiffusionConfig:
        """The inverse of :meth:`to_dict`."""
        return config_from_dict(cls, values)


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of steps ``t [batch]``: ``[batch, dim]`` of sines and cosines at geometric frequencies."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class DenoiserBlock(nn.Module):
    """``x + conv1x1(gelu(FiLM(conv_dilated(x))))``: one dilated 3-tap convolution told the step through FiLM."""

    def __init__(self, channels: int, dilation: int, embed: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(8 if channels % 8 == 0 else 1, channels)
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.film = nn.Linear(embed, 2 * channels)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(embedding)[:, :, None].chunk(2, dim=1)
        h = self.conv(F.gelu(self.norm(x)))
        return x + self.out(F.gelu(h * (1 + scale) + shift))


class TrajectoryDenoiser(nn.Module):
    """Predicts ``v`` from a noisy trajectory ``x_t [batch, latent_channels, frames]`` and its step ``t [batch]``.

    Holds the schedule as the buffer ``alpha_bar`` [T + 1] and the data's per-channel ``mean`` and
    ``std`` [latent_channels] (set by the recipe), so a checkpoint carries everything sampling needs.

    Lesson: lessons/09_bonus.ipynb
    """

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = c = config
        embed = 4 * c.channels
        self.register_buffer("alpha_bar", cosine_alpha_bar(c.steps).float())
        self.register_buffer("mean", torch.zeros(c.latent_channels))
        self.register_buffer("std", torch.ones(c.latent_channels))
        self.embed = nn.Sequential(nn.Linear(c.channels, embed), nn.GELU(), nn.Linear(embed, embed))
        self.inp = nn.Conv1d(c.latent_channels, c.channels, 3, padding=1)
        self.blocks = nn.ModuleList([DenoiserBlock(c.channels, d, embed) for d in c.dilations])
        self.outp = nn.Conv1d(c.channels, c.latent_channels, 3, padding=1)
        nn.init.zeros_(self.outp.weight)
        nn.init.zeros_(self.outp.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x_t.dim() != 3 or x_t.shape[1] != self.config.latent_channels:
            expected = f"[batch, {self.config.latent_channels}, frames]"
            raise ValueError(f"x_t has shape {list(x_t.shape)}; expected {expected}.")
        embedding = self.embed(step_embedding(t, self.config.channels))
        h = self.inp(x_t)
        for block in self.blocks:
            h = block(h, embedding)
        return self.outp(h)

    def standardise(self, trajectory: torch.Tensor) -> torch.Tensor:
        """Trajectories in the first model's units -> the diffusion model's (zero mean, unit variance per channel)."""
        return (trajectory - self.mean[:, None]) / self.std[:, None]

    def unstandardise(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`standardise`: back to latents the lesson-05 decoder takes."""
        return x * self.std[:, None] + self.mean[:, None]


def build_denoiser(config: DiffusionConfig | dict | None = None) -> TrajectoryDenoiser:
    """A :class:`TrajectoryDenoiser` from a config or the dict a checkpoint stores.

    Lesson: lessons/09_bonus.ipynb
    """
    return TrajectoryDenoiser(as_config(DiffusionConfig, config))


def _abar(model: TrajectoryDenoiser, t: torch.Tensor) -> torch.Tensor:
    return model.alpha_bar[t][:, None, None]


def add_noise(model: TrajectoryDenoiser, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The forward process in one jump: ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` (``t [batch]``)."""
    abar = _abar(model, t)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def v_target(model: TrajectoryDenoiser, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """What the network is trained to predict: ``v = sqrt(abar_t) noise - sqrt(1 - abar_t) x0``."""
    abar = _abar(model, t)
    return abar.sqrt() * noise - (1 - abar).sqrt() * x0


def split_v(
    model: TrajectoryDenoiser, x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0, eps)`` implied by a prediction ``v`` at ``x_t``: ``x0 = sqrt(abar) x_t - sqrt(1 - abar) v``,
    ``eps = sqrt(1 - abar) x_t + sqrt(abar) v``."""
    abar = _abar(model, t)
    return abar.sqrt() * x_t - (1 - abar).sqrt() * v, (1 - abar).sqrt() * x_t + abar.sqrt() * v


def diffusion_loss(model: TrajectoryDenoiser, x0: torch.Tensor, generator: torch.Generator | None = None) -> dict:
    """The training objective: mean squared error of the predicted ``v`` at a random step ``t ~ U{1..T}``.

    ``x0`` is a batch of standardised trajectories [batch, channels, frames]. Returns ``{"loss"}``.

    Lesson: lessons/09_bonus.ipynb
    """
    t = torch.randint(1, model.config.steps + 1, (len(x0),), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    return {"loss": F.mse_loss(model(add_noise(model, x0, t, noise), t), v_target(model, x0, t, noise))}


def ddim_step(
    model: TrajectoryDenoiser, x_t: torch.Tensor, t: int, t_prev: int, eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """One reverse step from step ``t`` to ``t_prev < t`` (DDIM, Song et al. 2021, eq. 12).

    ``x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z`` with ``x0, eps`` from the
    network's ``v`` and ``sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)``:
    ``eta = 0`` is deterministic; ``eta = 1`` with ``t_prev = t - 1`` is DDPM's ancestral step.

    Lesson: lessons/09_bonus.ipynb
    """
    batch = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
    x0, eps = split_v(model, x_t, model(x_t, batch), batch)
    abar_t, abar_prev = model.alpha_bar[t], model.alpha_bar[t_prev]
    sigma = eta * ((1 - abar_prev) / (1 - abar_t)).sqrt() * (1 - abar_t / abar_prev).sqrt()
    x_prev = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0 and t_prev > 0:
        x_prev = x_prev + sigma * torch.randn(x_t.shape, generator=generator).to(x_t.device)
    return x_prev


@torch.no_grad()
def sample_trajectories(
    model: TrajectoryDenoiser, n: int, frames: int, steps: int, eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """``n`` trajectories ``[n, latent_channels, frames]`` in the first model's units, from ``steps`` reverse steps.

    The steps are ``steps`` evenly spaced points from ``T`` down to 0. Lesson 09 compares 1,000 steps
    (every step, DDPM with ``eta = 1``) with a few (DDIM, ``eta = 0``).

    Lesson: lessons/09_bonus.ipynb
    """
    total = model.config.steps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= total:
        raise ValueError(f"steps={steps!r} must be a whole number from 1 to T = {total}.")
    model.eval()
    times = torch.linspace(total, 0, steps + 1).round().long().tolist()
    x = torch.randn((n, model.config.latent_channels, frames), generator=generator).to(model.alpha_bar.device)
    for t, t_prev in zip(times[:-1], times[1:], strict=True):
        x = ddim_step(model, x, t, t_prev, eta, generator)
    return model.unstandardise(x)
