"""A fully convolutional VAE on raw audio (source 004, section 3): 128 samples become one latent frame.

Lesson 03's naive waveform VAEs compressed a whole window into one vector and scored samples with
squared error, and played silence or noise. This one keeps time: an optional PQMF filter bank
(:mod:`coursekit.audio.pqmf`) splits the waveform into ``bands`` bands at ``1 / bands`` of the
rate, strided convolutions shrink it further by ``prod(strides)`` (``bands * prod(strides)`` is 128
by default: 16 kHz -> 125 latent frames per second), each latent frame holds ``latent_channels``
numbers, and transposed convolutions (then the synthesis bank) grow it back. It is
trained with the multi-resolution spectral distance (magnitudes only, so phase is free) plus a
regulariser on the latents (KL for a VAE, MMD for a Wasserstein autoencoder).

Shapes (default settings)::

    x       [batch, 1, samples]              samples divisible by 128
    mu      [batch, 16, samples / 128]       also logvar
    x_hat   [batch, 1, samples]              in (-1, 1)

Encoder: the analysis bank when ``bands > 1``, a 7-tap convolution to ``channels[0]``, then per stage a
residual block of dilated convolutions (dilations 1 and 3: it hears 9 frames of its stage) and a strided convolution
(kernel ``2 * stride``) to the stage's channels; a 3-tap convolution to ``2 * latent_channels``
gives ``mu`` and ``logvar``. Decoder: the mirror image, with transposed convolutions, ending in
the synthesis bank and ``tanh``.

Lesson: lessons/05_waveform_vae.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from coursekit.audio.pqmf import PQMF
from coursekit.audio.spectral import multi_resolution_spectral_convergence, multi_resolution_spectral_distance
from coursekit.checks import check_whole
from coursekit.config import as_config, config_from_dict
from coursekit.losses import beta_warmup, kl_normal, mmd_imq
from coursekit.models import reparameterize


@dataclass
class AudioVAEConfig:
    """Everything that builds an :class:`AudioVAE`; stored beside the weights in checkpoints.

    Lesson: lessons/05_waveform_vae.ipynb
    """

    bands: int = 1  # PQMF bands the waveform is split into first (1: the network sees the waveform itself)
    strides: tuple[int, ...] = (8, 4, 4)  # one downsampling stage each; bands * their product is the compression
    channels: tuple[int, ...] = (16, 64, 128)  # channels after each stage
    latent_channels: int = 16  # numbers per latent frame
    dilations: tuple[int, ...] = (1, 3)  # of the residual block of every stage

    def __post_init__(self) -> None:
        for name in ("strides", "channels", "dilations"):
            values = getattr(self, name)
            values = tuple(values) if isinstance(values, list | tuple) else values
            setattr(self, name, values)
            if not isinstance(values, tuple) or not values:
                example = getattr(type(self), name)
                raise ValueError(f"{name}={values!r}: give one or more whole numbers, e.g. {example}.")
            for i, value in enumerate(values):
                check_whole(value, f"{name}[{i}]")
        if len(self.strides) != len(self.channels):
            raise ValueError(
                f"strides has {len(self.strides)} stages but channels has {len(self.channels)}: give one channel "
                "count per stage."
            )
        check_whole(self.latent_channels, "latent_channels")
        check_whole(self.bands, "bands")

    @property
    def compression(self) -> int:
        """Samples per latent frame: ``bands * prod(strides)`` (128)."""
        return self.bands * math.prod(self.strides)

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists), for checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> AudioVAEConfig:
        """The config :meth:`to_dict` wrote; raises ValueError naming unknown keys."""
        return config_from_dict(cls, values)


class ResidualBlock(nn.Module):
    """``x + f(x)`` with ``f`` a chain of 3-tap dilated convolutions (LeakyReLU before each): length kept.

    Lesson: lessons/05_waveform_vae.ipynb
    """

    def __init__(self, channels: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for d in dilations:
            layers += [nn.LeakyReLU(0.2), nn.Conv1d(channels, channels, 3, padding=d, dilation=d)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [batch, channels, frames]`` -> the same shape."""
        return x + self.body(x)


class AudioVAE(nn.Module):
    """The fully convolutional waveform VAE (see the module docstring for the layers and shapes).

    Example::

        model = build_audio_vae()
        x_hat, mu, logvar = model(x)            # x [b, 1, 16000] -> mu [b, 16, 125]

    Lesson: lessons/05_waveform_vae.ipynb
    """

    def __init__(self, config: AudioVAEConfig) -> None:
        super().__init__()
        self.config = c = config
        widths = (c.channels[0], *c.channels)  # input width of each stage, then the last stage's output
        self.pqmf = PQMF(c.bands) if c.bands > 1 else None
        encoder: list[nn.Module] = [nn.Conv1d(c.bands, widths[0], 7, padding=3)]
        for stride, c_in, c_out in zip(c.strides, widths[:-1], widths[1:], strict=True):
            encoder += [ResidualBlock(c_in, c.dilations), nn.LeakyReLU(0.2), _down(c_in, c_out, stride)]
        encoder += [nn.LeakyReLU(0.2), nn.Conv1d(widths[-1], 2 * c.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*encoder)
        decoder: list[nn.Module] = [nn.Conv1d(c.latent_channels, widths[-1], 3, padding=1)]
        for stride, c_in, c_out in reversed(list(zip(c.strides, widths[:-1], widths[1:], strict=True))):
            decoder += [nn.LeakyReLU(0.2), _up(c_out, c_in, stride), ResidualBlock(c_in, c.dilations)]
        decoder += [nn.LeakyReLU(0.2), nn.Conv1d(widths[0], c.bands, 7, padding=3)]
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, logvar)``, each ``[batch, latent_channels, samples / compression]``.

        Raises:
            ValueError: ``x`` is not ``[batch, 1, samples]`` with ``samples`` a multiple of the compression.

        Lesson: lessons/05_waveform_vae.ipynb
        """
        _check_audio_batch(x, self.config.compression)
        if self.pqmf is not None:
            x = self.pqmf.analysis(x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps`` frame by frame (:func:`coursekit.models.reparameterize`)."""
        return reparameterize(mu, logvar, generator)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Audio ``[batch, 1, frames * compression]`` in (-1, 1) from latents ``[batch, latent_channels, frames]``.

        Lesson: lessons/05_waveform_vae.ipynb
        """
        if z.dim() != 3 or z.shape[1] != self.config.latent_channels:
            raise ValueError(
                f"z has shape {list(z.shape)}; expected [batch, {self.config.latent_channels}, frames]."
            )
        y = self.decoder(z)
        if self.pqmf is not None:
            y = self.pqmf.synthesis(y)
        return torch.tanh(y)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_hat, mu, logvar)``: encode, draw one posterior sample per frame, decode."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar


def _down(c_in: int, c_out: int, stride: int) -> nn.Conv1d:
    """A strided convolution that divides the length by exactly ``stride`` (kernel ``2 * stride``)."""
    return nn.Conv1d(c_in, c_out, 2 * stride, stride=stride, padding=stride // 2 + stride % 2, bias=True)


def _up(c_in: int, c_out: int, stride: int) -> nn.ConvTranspose1d:
    """A transposed convolution that multiplies the length by exactly ``stride`` (kernel ``2 * stride``)."""
    padding = stride // 2 + stride % 2
    return nn.ConvTranspose1d(c_in, c_out, 2 * stride, stride=stride, padding=padding, output_padding=stride % 2)


def _check_audio_batch(x: torch.Tensor, compression: int) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 3 or x.shape[1] != 1:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x has shape {shape}; expected float audio [batch, 1, samples] (x.view(batch, 1, -1)).")
    if x.shape[-1] % compression:
        fit = x.shape[-1] - x.shape[-1] % compression
        raise ValueError(
            f"x has {x.shape[-1]} samples, not a multiple of the compression {compression}: "
            f"crop it to {fit} (coursekit.audio.trim_or_pad(x, {fit}))."
        )


def build_audio_vae(config: AudioVAEConfig | dict | None = None) -> AudioVAE:
    """An :class:`AudioVAE` from a config or the dict a checkpoint stores (default: ``AudioVAEConfig()``).

    Lesson: lessons/05_waveform_vae.ipynb
    """
    return AudioVAE(as_config(AudioVAEConfig, config))


REGULARISERS = ("kl", "mmd")
RECONSTRUCTIONS = ("spectral", "spectral+convergence", "spectral+convergence+waveform", "mse")


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "spectral+convergence") -> torch.Tensor:
    """How far waveforms ``x_hat`` are from ``x`` (both Tensor ``[batch, channels, samples]``), as a Tensor [].

    ``kind`` is one of :data:`RECONSTRUCTIONS`: ``"spectral"`` is the multi-resolution spectral
    distance of :func:`coursekit.audio.multi_resolution_spectral_distance` (log magnitudes, phase
    ignored); ``"spectral+convergence"`` (the default, the loss lesson 05's models and lesson 09's
    fine-tunings train on) adds :func:`coursekit.audio.multi_resolution_spectral_convergence` (linear
    magnitudes, which weigh the loud partials); ``"spectral+convergence+waveform"`` adds the
    waveform's relative squared error ``sum((x_hat - x)^2) / sum(x^2)`` (1 for a silent output);
    ``"mse"`` is the waveform's mean squared error alone.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    if kind not in RECONSTRUCTIONS:
        raise ValueError(f"kind={kind!r}: choose one of {RECONSTRUCTIONS}.")
    if kind == "mse":
        return (x_hat - x).pow(2).mean()
    loss = multi_resolution_spectral_distance(x_hat, x)
    if "convergence" in kind:
        loss = loss + multi_resolution_spectral_convergence(x_hat, x)
    if kind.endswith("waveform"):
        loss = loss + (x_hat - x).pow(2).sum() / x.pow(2).sum().clamp_min(1e-12)
    return loss


class AudioVAELoss:
    """The lesson-05 objective, in the form :func:`coursekit.train.fit` takes: ``loss(model, batch)``.

    ``loss = reconstruction + weight(step) * regulariser``, where

    - reconstruction is ``"spectral"``, the multi-resolution spectral distance of
      :func:`coursekit.audio.multi_resolution_spectral_distance` (log magnitudes, phase ignored, the
      loss of source 004), ``"spectral+convergence"``, that plus
      :func:`coursekit.audio.multi_resolution_spectral_convergence` (linear magnitudes, which weigh
      the loud partials), ``"spectral+convergence+waveform"``, that plus the waveform's relative squared
      error ``sum((x_hat - x)^2) / sum(x^2)`` (1 for a silent output, so it sits on the scale of the
      spectral terms; it ties the phase, which the spectral terms leave free), or ``"mse"``, the
      waveform's mean squared error alone (for comparison only);
    - regulariser is ``"kl"`` (a VAE: the posterior sample is decoded, KL to N(0, 1) in nats per
      latent frame, summed over channels) or ``"mmd"`` (a Wasserstein autoencoder: the posterior
      mean is decoded and :func:`coursekit.losses.mmd_imq` compares ``mmd_frames`` of its frames,
      drawn at random, with as many prior draws);
    - ``weight(step)`` rises linearly from 0 to ``weight`` over ``warmup_steps`` training calls
      (calls in eval mode do not count), so the autoencoder learns to reconstruct before the
      regulariser pulls on its latents.

    Returns ``{"loss", "recon", "regulariser", "weight"}``, each a Tensor [].

    Lesson: lessons/05_waveform_vae.ipynb
    """

    def __init__(
        self,
        regulariser: str = "kl",
        weight: float = 0.01,
        warmup_steps: int = 0,
        reconstruction: str = "spectral",
        mmd_frames: int = 256,
        generator: torch.Generator | None = None,
    ) -> None:
        if regulariser not in REGULARISERS:
            raise ValueError(f"regulariser={regulariser!r}: choose one of {REGULARISERS}.")
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction={reconstruction!r}: choose one of {RECONSTRUCTIONS}.")
        if not weight >= 0 or isinstance(weight, bool):
            raise ValueError(f"weight={weight!r}: the regulariser's weight must be a number >= 0 (0 turns it off).")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps={warmup_steps!r}: give a whole number of steps >= 0.")
        check_whole(mmd_frames, "mmd_frames")
        self.regulariser, self.weight, self.warmup_steps = regulariser, float(weight), warmup_steps
        self.reconstruction, self.mmd_frames, self.generator = reconstruction, mmd_frames, generator
        self.steps = 0

    def current_weight(self) -> float:
        """The regulariser's weight now: ``weight * min(1, steps / warmup_steps)``."""
        return beta_warmup(self.steps, self.warmup_steps, self.weight)

    def __call__(self, model: AudioVAE, batch: dict | torch.Tensor) -> dict[str, torch.Tensor]:
        x = batch["audio"] if isinstance(batch, dict) else batch
        mu, logvar = model.encode(x)
        if self.regulariser == "kl":
            x_hat = model.decode(model.reparameterize(mu, logvar, self.generator))
            regulariser = kl_normal(mu, logvar).sum(dim=1).mean()
        else:
            x_hat = model.decode(mu)
            frames = mu.transpose(1, 2).reshape(-1, mu.shape[1])
            chosen = torch.randperm(len(frames), generator=self.generator)[: self.mmd_frames]
            regulariser = mmd_imq(frames[chosen], generator=self.generator)
        recon = reconstruction_loss(x_hat, x, self.reconstruction)
        weight = self.current_weight()
        if model.training:
            self.steps += 1
        return {"loss": recon + weight * regulariser, "recon": recon, "regulariser": regulariser,
                "weight": torch.tensor(weight)}  # fmt: skip
