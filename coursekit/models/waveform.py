"""Naive VAEs on raw waveforms: the models that lesson 03 trains to show why raw audio is hard.

Two encoder and decoder pairs share one interface with :class:`coursekit.models.vae.ImageVAE`
(``encode -> (mu, logvar)``, ``reparameterize``, ``decode``, ``forward``):

- ``"linear"``: fully connected, ``n_samples -> hidden (x hidden_layers) -> latent`` and back;
- ``"conv"``: 1-D strided convolutions, each dividing the length by ``stride``, then linear heads.

The decoder predicts the *mean* of a Gaussian over every sample, and its variance is learned:
``"isotropic"`` (one scalar for all samples, Sigma = sigma^2 I), ``"diagonal"`` (one per sample
position), or ``"fixed"`` (sigma = ``output_sigma``: the loss is then the squared error over
``2 sigma^2`` plus a constant). ``output_sigma`` is where a learned sigma starts.
These are the choices that source 000 tried, and lesson 03 measures what each does.

Lesson: lessons/03_raw_audio_pitfalls.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from coursekit.config import as_config, config_from_dict
from coursekit.losses import gaussian_nll, kl_divergence
from coursekit.models import reparameterize

KINDS = ("linear", "conv")
VARIANCES = ("fixed", "isotropic", "diagonal")


@dataclass
class WaveformVAEConfig:
    """Everything that builds a :class:`WaveformVAE`; stored beside the weights in checkpoints.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """

    kind: str = "conv"  # "linear" or "conv"
    n_samples: int = 3000  # window length: one second at 3,000 Hz
    latent_dim: int = 16
    hidden: int = 256  # "linear": width of the hidden layers
    hidden_layers: int = 2  # "linear": hidden layers in the encoder, and as many in the decoder
    channels: tuple[int, ...] = (16, 32, 64)  # "conv": channels of each strided convolution
    kernel_size: int = 9  # "conv"
    stride: int = 5  # "conv": each convolution divides the length by this (3000 -> 600 -> 120 -> 24)
    variance: str = "isotropic"  # the decoder's output variance: "fixed", "isotropic" or "diagonal"
    output_sigma: float = 1.0  # the decoder's standard deviation: fixed, or where learning starts

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}: use one of {list(KINDS)}.")
        if self.variance not in VARIANCES:
            raise ValueError(f"variance={self.variance!r}: use one of {list(VARIANCES)}.")
        if not (isinstance(self.output_sigma, int | float) and self.output_sigma > 0):
            raise ValueError(f"output_sigma={self.output_sigma!r} must be a positive number, e.g. 1.0 or 0.1.")
        for name in ("n_samples", "latent_dim", "hidden", "hidden_layers", "kernel_size", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if not self.channels or any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels={self.channels!r}: give positive channel counts, e.g. (16, 32, 64).")
        if self.kind == "conv" and self.stride == 1 and self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size={self.kernel_size} with stride=1: an even kernel cannot keep the length, "
                f"use an odd kernel_size, e.g. {self.kernel_size + 1}."
            )
        if self.kind == "conv" and self.n_samples % self.stride ** len(self.channels):
            raise ValueError(
                f"n_samples={self.n_samples} is not divisible by stride ** len(channels) = "
                f"{self.stride ** len(self.channels)}: pick a window length that is, e.g. "
                f"{self.stride ** len(self.channels) * max(1, self.n_samples // self.stride ** len(self.channels))}."
            )

    def to_dict(self) -> dict:
        """A JSON-ready dict, for checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> WaveformVAEConfig:
        """The config :meth:`to_dict` wrote; raises ValueError naming unknown keys."""
        return config_from_dict(cls, values)


class WaveformVAE(nn.Module):
    """A VAE on mono windows ``[batch, 1, n_samples]`` with a Gaussian decoder of learned variance.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """

    def __init__(self, config: WaveformVAEConfig) -> None:
        super().__init__()
        self.config = config
        n = config.n_samples
        if config.kind == "linear":
            h = config.hidden
            deeper = [m for _ in range(config.hidden_layers - 1) for m in (nn.Linear(h, h), nn.ReLU())]
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(n, h), nn.ReLU(), *deeper)
            features = h
            deeper = [m for _ in range(config.hidden_layers - 1) for m in (nn.Linear(h, h), nn.ReLU())]
            self.decoder = nn.Sequential(
                nn.Linear(config.latent_dim, h), nn.ReLU(), *deeper, nn.Linear(h, n), nn.Unflatten(1, (1, n))
            )
        else:
            widths = (1, *config.channels)
            k, s = config.kernel_size, config.stride
            pad = max(0, (k - s + 1) // 2)  # each convolution maps L -> L / s, also for a kernel shorter than s
            out_pad = s + 2 * pad - k  # and each transposed one maps L / s back to L
            short = n // s ** len(config.channels)
            layers = []
            for a, b in zip(widths[:-1], widths[1:], strict=True):
                layers += [nn.Conv1d(a, b, k, stride=s, padding=pad), nn.ReLU()]
            self.encoder = nn.Sequential(*layers, nn.Flatten())
            features = widths[-1] * short
            layers = [nn.Linear(config.latent_dim, features), nn.ReLU(), nn.Unflatten(1, (widths[-1], short))]
            reversed_widths = widths[::-1]
            for i, (a, b) in enumerate(zip(reversed_widths[:-1], reversed_widths[1:], strict=True)):
                layers.append(nn.ConvTranspose1d(a, b, k, stride=s, padding=pad, output_padding=out_pad))
                if i < len(widths) - 2:
                    layers.append(nn.ReLU())
            self.decoder = nn.Sequential(*layers)
        self.to_mu = nn.Linear(features, config.latent_dim)
        self.to_logvar = nn.Linear(features, config.latent_dim)
        shape = {"fixed": (), "isotropic": (1, 1, 1), "diagonal": (1, 1, n)}[config.variance]
        initial = torch.full(shape, 2 * math.log(config.output_sigma))
        if config.variance == "fixed":
            self.register_buffer("output_logvar", initial)
        else:
            self.output_logvar = nn.Parameter(initial)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each Tensor ``[batch, latent_dim]``, of windows ``x [batch, 1, n_samples]``."""
        _check_windows(x, self.config.n_samples)
        features = self.encoder(x)
        return self.to_mu(features), self.to_logvar(features)

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``: Tensor ``[batch, latent_dim]``."""
        return reparameterize(mu, logvar, generator)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean waveform ``[batch, 1, n_samples]`` for latents ``z [batch, latent_dim]``."""
        if z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z has shape {list(z.shape)}; expected [batch, {self.config.latent_dim}].")
        return self.decoder(z)

    def output_log_variance(self) -> torch.Tensor:
        """The decoder's log-variance: Tensor ``[]`` ("fixed"), ``[1, 1, 1]`` or ``[1, 1, n_samples]``."""
        return self.output_logvar

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean [batch, 1, n_samples], mu, logvar)``: encode, sample one ``z``, decode."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The decoder's mean for ``n`` latents from the prior: Tensor ``[n, 1, n_samples]``."""
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=self.to_mu.weight.device)
        return self.decode(z)


def waveform_vae_loss(model: WaveformVAE, batch: dict, beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Negative ELBO with the Gaussian decoder, in the form :func:`coursekit.train.fit` takes.

    Returns ``{"loss": recon + beta * kl, "recon": Gaussian NLL (nats per window), "kl": nats per
    window, "mse": mean squared sample error, "sigma": the decoder's mean standard deviation}``.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    x = batch["audio"]
    mean, mu, logvar = model(x)
    output_logvar = model.output_log_variance()
    recon = gaussian_nll(x, mean, output_logvar)
    kl = kl_divergence(mu, logvar)
    return {
        "loss": recon + beta * kl,
        "recon": recon,
        "kl": kl,
        "mse": (mean - x).pow(2).mean(),
        "sigma": torch.exp(0.5 * output_logvar.detach()).mean(),
    }


def attention_memory_bytes(seq_len: int, heads: int = 1, batch: int = 1, bytes_per_value: int = 4) -> int:
    """Bytes of one layer's attention weights: ``batch * heads * seq_len ** 2`` values.

    Self-attention compares every position with every other, so this grows with the square of
    the sequence length; a transformer keeps it for every layer during training.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    return batch * heads * seq_len**2 * bytes_per_value


def _check_windows(x: torch.Tensor, n_samples: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != n_samples:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"x has shape {shape}; expected [batch, 1, {n_samples}] (mono windows of n_samples={n_samples}): "
            "cut windows with coursekit.data.windows.RandomWindows, or x.view(batch, 1, -1)."
        )
    if not torch.isfinite(x).all():
        raise ValueError("x holds NaN or inf samples: check the audio you load (coursekit.audio.check_signal).")


def build_waveform_vae(config: WaveformVAEConfig | dict | None = None) -> WaveformVAE:
    """A :class:`WaveformVAE` from a config or the dict a checkpoint stores (default: ``WaveformVAEConfig()``).

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    return WaveformVAE(as_config(WaveformVAEConfig, config))
