"""A vector-quantised bottleneck (VQ-VAE, van den Oord et al. 2017) on lesson 05's waveform network.

Source 003 named a VQ-VAE as the next thing to try after its raw-audio VAE collapsed. In place of a
Gaussian posterior, every latent frame (``latent_channels`` numbers, 125 frames a second) is replaced by
the nearest of ``codes`` learned vectors, the codebook. Nothing pulls the codes towards a prior, so
there is no KL term to collapse; what can fail instead is the codebook: codes that no frame ever
chooses stop learning ("dead codes"), and the model ends up using a few. Perplexity, the exponential of
the entropy of code usage, counts the codes in effective use (``codes`` when all are used equally).

Training signals (``VQLoss``):

- reconstruction: lesson 05's spectral distances between the decoded quantised latents and the input;
- codebook: ``|sg(z) - e|^2`` moves each chosen code towards the frames that chose it;
- commitment: ``beta |z - sg(e)|^2`` keeps the encoder near its codes (``sg``: stop-gradient);
- straight-through: the decoder's gradient is copied onto ``z`` as if quantising were the identity.

Dead-code restarts: each code's use is tracked as a moving average of its count per batch; a code
whose average falls below ``restart_below`` is moved onto a random encoder frame of the current batch.

Shapes (default settings)::

    x        [batch, 1, samples]
    z        [batch, 16, samples / 128]      the encoder's output (its ``mu`` half)
    codes    [batch, samples / 128]          indices into the codebook [512, 16]
    x_hat    [batch, 1, samples]

Lesson: lessons/09_bonus.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.config import as_config, config_from_dict
from coursekit.models.audio_vae import AudioVAEConfig, build_audio_vae, reconstruction_loss


def perplexity(codes: torch.Tensor, n_codes: int) -> float:
    """``exp(entropy)`` of how often each of ``n_codes`` codes occurs in ``codes`` (any shape of indices).

    1 when one code is always chosen, ``n_codes`` when all are chosen equally often.

    Lesson: lessons/09_bonus.ipynb
    """
    if codes.numel() == 0:
        raise ValueError("codes is empty: perplexity needs at least one chosen code.")
    p = torch.bincount(codes.flatten(), minlength=n_codes).double() / codes.numel()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation of ``z [batch, dim, frames]`` with a learned codebook ``[codes, dim]``.

    ``forward`` returns ``{"quantized": z + sg(e - z)`` (the codes' values, the straight-through
    gradient to ``z``), ``"codes"`` [batch, frames], ``"codebook"`` and ``"commitment"`` (the two squared
    errors, Tensor []), ``"perplexity"`` (a float)}``. In training mode with ``restart_below`` set it
    also restarts dead codes (see the module docstring); ``usage`` holds each code's moving-average count.

    Lesson: lessons/09_bonus.ipynb
    """

    def __init__(self, codes: int, dim: int, restart_below: float | None = 0.1, decay: float = 0.9) -> None:
        super().__init__()
        for name, value in (("codes", codes), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if restart_below is not None and not restart_below > 0:
            raise ValueError(f"restart_below={restart_below!r}: a positive count per batch, or None (no restarts).")
        self.codes, self.dim, self.restart_below, self.decay = codes, dim, restart_below, decay
        self.codebook = nn.Parameter(torch.empty(codes, dim).uniform_(-1 / codes, 1 / codes))
        self.register_buffer("usage", torch.ones(codes))
        self.restarts = 0

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """The nearest code's index (Euclidean) for every frame: ``[batch, dim, frames]`` -> ``[batch, frames]``."""
        if z.dim() != 3 or z.shape[1] != self.dim:
            raise ValueError(f"z has shape {list(z.shape)}; expected [batch, {self.dim}, frames].")
        flat = z.transpose(1, 2).reshape(-1, self.dim)
        distances = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + self.codebook.pow(2).sum(1)
        return distances.argmin(1).view(z.shape[0], z.shape[2])

    def forward(self, z: torch.Tensor) -> dict:
        codes = self.nearest(z)
        e = self.codebook[codes].transpose(1, 2)  # [batch, dim, frames]
        parts = {
            "quantized": z + (e - z).detach(),
            "codes": codes,
            "codebook": F.mse_loss(e, z.detach()),
            "commitment": F.mse_loss(z, e.detach()),
            "perplexity": perplexity(codes, self.codes),
        }
        if self.training and self.restart_below is not None:
            self._restart_dead(z.detach(), codes)
        return parts

    @torch.no_grad()
    def _restart_dead(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        counts = torch.bincount(codes.flatten(), minlength=self.codes).float()
        self.usage.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        dead = (self.usage < self.restart_below).nonzero().flatten()
        if len(dead):
            frames = z.transpose(1, 2).reshape(-1, self.dim)
            chosen = torch.randint(len(frames), (len(dead),), device=z.device)
            self.codebook.data[dead] = frames[chosen]
            self.usage[dead] = 1.0
            self.restarts += len(dead)


@dataclass
class VQAudioConfig:
    """Lesson 05's network (``audio``) with its Gaussian bottleneck replaced by a codebook of ``codes`` codes.

    Lesson: lessons/09_bonus.ipynb
    """

    audio: AudioVAEConfig | dict | None = None
    codes: int = 512
    commitment: float = 0.25  # beta, the commitment loss's weight (the VQ-VAE paper's value)
    restart_below: float | None = 0.1  # dead-code threshold (moving-average uses per batch); None: never restart

    def __post_init__(self) -> None:
        self.audio = as_config(AudioVAEConfig, self.audio)
        if not self.commitment >= 0:
            raise ValueError(f"commitment={self.commitment!r} must be a number >= 0, e.g. 0.25.")

    def to_dict(self) -> dict:
        """A JSON-ready dict, for checkpoints."""
        return asdict(self) | {"audio": self.audio.to_dict()}

    @classmethod
    def from_dict(cls, values: dict) -> VQAudioConfig:
        """The inverse of :meth:`to_dict`."""
        return config_from_dict(cls, values)


class VQAudioAutoencoder(nn.Module):
    """Lesson 05's encoder and decoder with a :class:`VectorQuantizer` between them.

    The encoder is the :class:`~coursekit.models.audio_vae.AudioVAE`'s, and only its ``mu`` half is used
    (its ``logvar`` channels receive no gradient), so the network is the lesson-05 one with one thing
    changed: the bottleneck.

    Example::

        model = build_vq_audio()
        x_hat, parts = model(x)          # x [b, 1, 16000] -> parts["codes"] [b, 125]

    Lesson: lessons/09_bonus.ipynb
    """

    def __init__(self, config: VQAudioConfig) -> None:
        super().__init__()
        self.config = config
        self.network = build_audio_vae(config.audio)
        self.quantizer = VectorQuantizer(config.codes, config.audio.latent_channels, config.restart_below)

    @property
    def bits_per_second(self) -> float:
        """The bottleneck's capacity: ``log2(codes)`` bits per latent frame, at 16 kHz / compression frames a second."""
        return math.log2(self.config.codes) * 16000 / self.config.audio.compression

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices ``[batch, frames]`` of audio ``[batch, 1, samples]``."""
        return self.quantizer.nearest(self.network.encode(x)[0])

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Audio ``[batch, 1, frames * compression]`` from code indices ``[batch, frames]``."""
        if codes.dim() != 2 or codes.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"codes has shape {list(codes.shape)} and dtype {codes.dtype}; expected integer [batch, frames]."
            )
        return self.network.decode(self.quantizer.codebook[codes].transpose(1, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """``(x_hat, parts)`` with ``parts`` from :class:`VectorQuantizer` (quantised through straight-through)."""
        parts = self.quantizer(self.network.encode(x)[0])
        return self.network.decode(parts["quantized"]), parts


def build_vq_audio(config: VQAudioConfig | dict | None = None) -> VQAudioAutoencoder:
    """A :class:`VQAudioAutoencoder` from a config or the dict a checkpoint stores.

    Lesson: lessons/09_bonus.ipynb
    """
    return VQAudioAutoencoder(as_config(VQAudioConfig, config))


class VQLoss:
    """The VQ autoencoder's objective in the form :func:`coursekit.train.fit` takes: ``loss(model, batch)``.

    ``loss = spectral distance + spectral convergence (lesson 05's reconstruction) + codebook + beta * commitment``.
    Returns ``{"loss", "recon", "codebook", "commitment", "perplexity"}``, each a Tensor [].

    Lesson: lessons/09_bonus.ipynb
    """

    def __call__(self, model: VQAudioAutoencoder, batch: dict | torch.Tensor) -> dict[str, torch.Tensor]:
        x = batch["audio"] if isinstance(batch, dict) else batch
        x_hat, parts = model(x)
        recon = reconstruction_loss(x_hat, x)
        loss = recon + parts["codebook"] + model.config.commitment * parts["commitment"]
        return {"loss": loss, "recon": recon, "codebook": parts["codebook"], "commitment": parts["commitment"],
                "perplexity": torch.tensor(parts["perplexity"])}  # fmt: skip
