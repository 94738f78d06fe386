"""Lesson 04's VAE core: a small fully connected VAE on the 64-number codes of a Conv2D autoencoder.

Stage 2 of source 003's spectrogram VAE. It never sees audio or spectrograms: it maps pre-encoded
codes ``[batch, code_dim]`` to ``latent_dim`` latent variables and back, with a Gaussian decoder
whose (isotropic) variance can be learned. Lesson 06's latent VAE on waveform-VAE trajectories is
another model (``coursekit.models.latent``).

Example::

    vae = build_code_vae(CodeVAEConfig(code_dim=64, latent_dim=6))
    loss = code_vae_loss(vae, {"code": codes})["loss"]

Lesson: lessons/04_spectrogram_vae.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from coursekit.checks import check_batch, check_whole
from coursekit.config import as_config, config_from_dict
from coursekit.losses import gaussian_nll, kl_divergence
from coursekit.models import reparameterize

VARIANCES = ("fixed", "isotropic")


@dataclass
class CodeVAEConfig:
    """Everything that builds a :class:`CodeVAE`; stored beside the weights in checkpoints.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    code_dim: int = 64  # input size: SpectrogramAEConfig.code_dim
    hidden: int = 128  # width of each hidden layer
    latent_dim: int = 6  # source 003: S ** (1 / N) with 1,000 sounds and 4 levels per dimension
    depth: int = 2  # hidden layers in the encoder, and in the decoder
    variance: str = "isotropic"  # decoder variance: "isotropic" (one learned scalar) or "fixed"
    output_sigma: float = 1.0  # the decoder's standard deviation: fixed, or where learning starts

    def __post_init__(self) -> None:
        for name in ("code_dim", "hidden", "latent_dim", "depth"):
            check_whole(getattr(self, name), name)
        if self.variance not in VARIANCES:
            raise ValueError(f"variance={self.variance!r}: use one of {list(VARIANCES)}.")
        sigma = self.output_sigma
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma > 0:
            raise ValueError(f"output_sigma={self.output_sigma!r} must be a positive number, e.g. 1.0.")

    def to_dict(self) -> dict:
        """A JSON-ready dict, for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> CodeVAEConfig:
        """The config :meth:`to_dict` wrote; raises ValueError naming unknown keys."""
        return config_from_dict(cls, values)


class CodeVAE(nn.Module):
    """Stage 2, the VAE core: an MLP VAE on codes ``[batch, code_dim]`` with ``latent_dim`` latents.

    ``code -> (Linear + ReLU) x depth -> mu, logvar [batch, latent_dim]``; ``z -> (Linear + ReLU)
    x depth -> Linear -> mean code``. The decoder is a Gaussian ``N(mean, sigma^2 I)``. With
    ``variance="isotropic"`` sigma is one learned scalar: it settles at the root mean squared
    error of the reconstruction, which weighs the reconstruction against the KL automatically (a
    fixed sigma much larger than the error lets the KL win, and the latents collapse to the prior).
    The ELBO of a continuous density can be negative: lower is still better.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    def __init__(self, config: CodeVAEConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.hidden] * config.depth
        self.encoder = nn.Sequential(*_mlp([config.code_dim, *widths]))
        self.to_mu = nn.Linear(config.hidden, config.latent_dim)
        self.to_logvar = nn.Linear(config.hidden, config.latent_dim)
        self.decoder = nn.Sequential(*_mlp([config.latent_dim, *widths]), nn.Linear(config.hidden, config.code_dim))
        initial = torch.tensor(2 * math.log(config.output_sigma))
        if config.variance == "fixed":
            self.register_buffer("output_logvar", initial)
        else:
            self.output_logvar = nn.Parameter(initial)

    def encode(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each Tensor ``[batch, latent_dim]``, of codes ``[batch, code_dim]``.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        check_batch(code, (self.config.code_dim,), "code")
        hidden = self.encoder(code)
        return self.to_mu(hidden), self.to_logvar(hidden)

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``: Tensor ``[batch, latent_dim]``.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        return reparameterize(mu, logvar, generator)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean code ``[batch, code_dim]`` for latents ``z [batch, latent_dim]``.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        check_batch(z, (self.config.latent_dim,), "z")
        return self.decoder(z)

    def forward(
        self, code: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean code [batch, code_dim], mu, logvar)``: encode, sample one ``z`` per code, decode."""
        mu, logvar = self.encode(code)
        return self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean codes ``[n, code_dim]`` of ``n`` latents drawn from the prior N(0, I).

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        check_whole(n, "n")
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=self.to_mu.weight.device)
        return self.decode(z)


def _mlp(widths: list[int]) -> list[nn.Module]:
    """Linear + ReLU layers through ``widths``."""
    return [m for a, b in zip(widths[:-1], widths[1:], strict=True) for m in (nn.Linear(a, b), nn.ReLU())]


def build_code_vae(config: CodeVAEConfig | dict | None = None) -> CodeVAE:
    """A fresh :class:`CodeVAE` (initialised from the global torch seed) for a config or its dict.

    Example::

        vae, ckpt = checkpoints.load_pretrained("spec_vae_nsynth", build_code_vae)

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    return CodeVAE(as_config(CodeVAEConfig, config))


def code_vae_loss(
    model: CodeVAE, batch: dict, beta: float = 1.0, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Negative ELBO of a batch of codes, in the form :func:`coursekit.train.fit` takes.

    Args:
        model: a :class:`CodeVAE`.
        batch: ``{"code": Tensor [batch, code_dim], ...}``, as :func:`pre_encode` yields.
        beta: weight of the KL term (1.0: the plain ELBO).
        generator: for the sampling noise; default the global generator.

    Returns:
        ``{"loss": recon + beta * kl, "recon": Gaussian NLL of the code under N(mean, sigma^2 I)
        (nats per note), "kl": nats per note, "mse": mean squared code error, "sigma": the decoder's
        standard deviation}``, each a Tensor [].

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    code = batch["code"]
    mean, mu, logvar = model(code, generator=generator)
    recon = gaussian_nll(code, mean, model.output_logvar)
    kl = kl_divergence(mu, logvar)
    return {
        "loss": recon + beta * kl,
        "recon": recon,
        "kl": kl,
        "mse": (mean - code).pow(2).mean(),
        "sigma": torch.exp(0.5 * model.output_logvar.detach()),
    }
