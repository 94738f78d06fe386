"""A spectrogram VAE in two stages: a Conv2D autoencoder, then a small VAE core on its codes.

This follows source 003. A note becomes an image of STFT magnitudes (:class:`SpectrogramFeatures`:
2 s, a -70 dB floor, mu-law with ``mu = 8``, values in [0, 1]); a deterministic convolutional
autoencoder (:class:`SpectrogramAE`, stage 1) squeezes each image into a code of 64 numbers; a
small fully connected VAE (:class:`CodeVAE`, stage 2, the "VAE core") maps codes to 6 latent
variables and back. Stage 2 trains on codes computed once by the frozen stage-1 encoder
(:func:`pre_encode`), so it takes seconds, not minutes. :class:`SpectrogramVAE` joins the pieces::

    model = load_spectrogram_vae()                      # the shipped checkpoints of both stages
    mu, logvar = model.encode_audio(note)               # audio [b, 1, samples] -> [b, 6]
    audio_out = model.latent_to_audio(mu)               # [b, 6] -> features -> Griffin-Lim -> [b, 1, 32000]

Shapes (default settings): audio ``[batch, 1, 32000]`` at 16 kHz -> features ``[batch, 1, 256, 128]``
(frequency bins of 31.25 Hz, frames of 16 ms) -> code ``[batch, 64]`` -> latent ``[batch, 6]``.

Lesson: lessons/04_spectrogram_vae.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.checks import check_batch, check_whole
from coursekit.config import as_config, config_from_dict
from coursekit.features import SpectrogramFeatures
from coursekit.models.code_vae import CodeVAE

OUTPUT_BIAS = -4.6  # the autoencoder's last bias at initialisation: sigmoid(-4.6) = 0.01, a typical feature value


@dataclass
class SpectrogramAEConfig:
    """Everything that builds a :class:`SpectrogramAE`, and the feature settings that make its input from
    audio; stored beside the weights in checkpoints. (``spec_ae_nsynth.pt`` was saved before ``features``
    was a field: it loads with the default settings, the ones its metrics record it was trained on.)

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    channels: tuple[int, ...] = (16, 32, 64, 64)  # one stride-2 block each: 256x128 -> 128x64 -> ... -> 16x8
    code_dim: int = 64  # size of the code: 512 times fewer numbers than the 32,768 of the features
    batch_norm: bool = True  # BatchNorm2d after every hidden convolution (faster, steadier training)
    n_freq: int = 256  # input height: features.n_freq
    n_frames: int = 128  # input width: features.n_frames
    features: SpectrogramFeatures = field(default_factory=SpectrogramFeatures)  # how audio becomes its input

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels) if isinstance(self.channels, list | tuple) else self.channels
        if not isinstance(self.channels, tuple) or not self.channels:
            raise ValueError(f"channels={self.channels!r}: give one positive channel count per block, e.g. (16, 32).")
        for i, c in enumerate(self.channels):
            check_whole(c, f"channels[{i}]")
        for name in ("code_dim", "n_freq", "n_frames"):
            check_whole(getattr(self, name), name)
        step = 2 ** len(self.channels)
        if self.n_freq % step or self.n_frames % step:
            raise ValueError(
                f"n_freq={self.n_freq} and n_frames={self.n_frames} must be divisible by 2 ** len(channels) = {step}: "
                "use fewer blocks or pad the features."
            )
        if isinstance(self.features, dict):  # as a checkpoint stores it
            self.features = SpectrogramFeatures.from_dict(self.features)
        if not isinstance(self.features, SpectrogramFeatures):
            raise TypeError(f"features must be a SpectrogramFeatures or a dict of its fields, got {self.features!r}.")
        if (self.n_freq, self.n_frames) != (self.features.n_freq, self.features.n_frames):
            raise ValueError(
                f"n_freq={self.n_freq} and n_frames={self.n_frames} differ from the features' "
                f"{self.features.n_freq} x {self.features.n_frames}: build the autoencoder for the features it reads."
            )

    @property
    def bottleneck(self) -> tuple[int, int, int]:
        """Shape of the last feature map: ``(channels[-1], n_freq / 2**blocks, n_frames / 2**blocks)`` (64, 16, 8)."""
        step = 2 ** len(self.channels)
        return (self.channels[-1], self.n_freq // step, self.n_frames // step)

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists), for checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> SpectrogramAEConfig:
        """The config :meth:`to_dict` wrote; raises ValueError naming unknown keys."""
        return config_from_dict(cls, values)


class SpectrogramAE(nn.Module):
    """Stage 1: a deterministic Conv2D autoencoder of features ``[batch, 1, 256, 128]`` in [0, 1].

    Encoder: ``len(channels)`` blocks of a 4x4 stride-2 convolution (+ batch norm) + ReLU, each
    halving height and width, then a linear layer to a code ``[batch, code_dim]``, batch-normalised
    without a learned scale or shift: over the training notes every code number has mean 0 and
    variance 1. That keeps the codes' differences between notes large, so the decoder cannot
    ignore them (measured: twice as fast to learn as a plain or ``tanh`` code, which saturated at
    +-1 and left the decoder drawing the average note), and hands the VAE core standardised inputs.
    Decoder: the mirror image, linear + ReLU to the bottleneck map, transposed convolutions, and a
    sigmoid so that the output lies in (0, 1) like the features. Its last bias starts at
    :data:`OUTPUT_BIAS`, so the first output is the quiet average of a spectrogram (sigmoid(-4.6) =
    0.01), not 0.5 everywhere, which took hundreds of steps to unlearn.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    def __init__(self, config: SpectrogramAEConfig) -> None:
        super().__init__()
        self.config = config
        widths = (1, *config.channels)
        norm = config.batch_norm
        down = [m for a, b in zip(widths[:-1], widths[1:], strict=True) for m in _block(nn.Conv2d(a, b, 4, 2, 1), norm)]
        n_bottleneck = math.prod(config.bottleneck)
        code = [nn.Linear(n_bottleneck, config.code_dim), nn.BatchNorm1d(config.code_dim, affine=False)]
        self.encoder = nn.Sequential(*down, nn.Flatten(), *code)
        back = widths[::-1]
        pairs = zip(back[:-2], back[1:-1], strict=True)
        up = [m for a, b in pairs for m in _block(nn.ConvTranspose2d(a, b, 4, 2, 1), norm)]
        self.decoder = nn.Sequential(
            nn.Linear(config.code_dim, n_bottleneck),
            nn.ReLU(),
            nn.Unflatten(1, config.bottleneck),
            *up,
            nn.ConvTranspose2d(back[-2], 1, 4, 2, 1),
            nn.Sigmoid(),
        )
        nn.init.constant_(self.decoder[-2].bias, OUTPUT_BIAS)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(1, n_freq, n_frames)``."""
        return (1, self.config.n_freq, self.config.n_frames)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Codes of features: ``[batch, 1, n_freq, n_frames]`` -> ``[batch, code_dim]`` (about N(0, 1) each).

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        check_batch(features, self.input_shape, "features")
        return self.encoder(features)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Features of codes: ``[batch, code_dim]`` -> ``[batch, 1, n_freq, n_frames]`` in (0, 1).

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        check_batch(code, (self.config.code_dim,), "code")
        return self.decoder(code)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``decode(encode(features))``: Tensor ``[batch, 1, n_freq, n_frames]``."""
        return self.decode(self.encode(features))


def _block(conv: nn.Conv2d | nn.ConvTranspose2d, norm: bool) -> list[nn.Module]:
    """``conv``, batch norm when ``norm``, then ReLU."""
    return [conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU()] if norm else [conv, nn.ReLU()]


def build_spectrogram_ae(config: SpectrogramAEConfig | dict | None = None) -> SpectrogramAE:
    """A fresh :class:`SpectrogramAE` (initialised from the global torch seed) for a config or its dict.

    Example::

        ae = build_spectrogram_ae()                                   # the default, about 1.3M parameters
        ae, ckpt = checkpoints.load_pretrained("spec_ae_nsynth", build_spectrogram_ae)

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    return SpectrogramAE(as_config(SpectrogramAEConfig, config))


def ae_loss(model: SpectrogramAE, batch: dict) -> dict[str, torch.Tensor]:
    """Mean squared error of the reconstructed features, in the form :func:`coursekit.train.fit` takes.

    Args:
        model: a :class:`SpectrogramAE`.
        batch: ``{"features": Tensor [batch, 1, n_freq, n_frames], ...}``, as :func:`nsynth_features` yields.

    Returns:
        ``{"loss": mean over every bin of (reconstruction - features) ** 2}``, a Tensor [].

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    features = batch["features"]
    return {"loss": F.mse_loss(model(features), features)}


class SpectrogramVAE(nn.Module):
    """Audio -> features -> code -> latent and back: :class:`SpectrogramFeatures`, a trained
    :class:`SpectrogramAE` and a :class:`CodeVAE` on its codes.

    The helpers run without gradients, in whatever mode the parts are in (call ``.eval()`` after
    building; :func:`load_spectrogram_vae` does). Train the parts themselves, ``.ae`` and ``.vae``.

    Example::

        model = load_spectrogram_vae()
        mu, _ = model.encode_audio(notes)          # [b, 1, samples] -> [b, 6]
        out = model.latent_to_audio(mu)            # [b, 1, 32000]

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    def __init__(self, ae: SpectrogramAE, vae: CodeVAE, features: SpectrogramFeatures | None = None) -> None:
        super().__init__()
        self.features = ae.config.features if features is None else features
        if ae.config.code_dim != vae.config.code_dim:
            raise ValueError(
                f"the autoencoder makes codes of {ae.config.code_dim} but the VAE core takes {vae.config.code_dim}: "
                "train the VAE core on this autoencoder's codes (CodeVAEConfig(code_dim=...))."
            )
        if ae.input_shape != self.features.shape:
            raise ValueError(
                f"the autoencoder takes {list(ae.input_shape)} but the features are {list(self.features.shape)}: "
                "build both from the same n_freq and n_frames."
            )
        self.ae, self.vae = ae, vae

    @property
    def latent_dim(self) -> int:
        """Number of latent variables."""
        return self.vae.config.latent_dim

    @torch.no_grad()
    def encode_audio(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, logvar)``, each ``[batch, latent_dim]``, of notes ``[samples]``, ``[1, samples]``
        or ``[batch, 1, samples]`` at ``features.sr`` Hz (one note gives a batch of one).

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        features = self.features.encode(x.to(self._device()))
        if features.dim() == 3:
            features = features.unsqueeze(0)
        return self.vae.encode(self.ae.encode(features))

    @torch.no_grad()
    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Features ``[batch, 1, n_freq, n_frames]`` in (0, 1) of latents ``z [batch, latent_dim]``.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        return self.ae.decode(self.vae.decode(z.to(self._device())))

    def features_to_audio(self, features: torch.Tensor, n_iter: int = 32) -> torch.Tensor:
        """Audio ``[batch, 1, n_samples]`` from features, by :meth:`SpectrogramFeatures.decode` (Griffin-Lim).

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        return self.features.decode(features.detach().cpu(), n_iter=n_iter)

    def latent_to_audio(self, z: torch.Tensor, n_iter: int = 32) -> torch.Tensor:
        """Audio ``[batch, 1, n_samples]`` of latents ``z [batch, latent_dim]``: decode, then Griffin-Lim.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        return self.features_to_audio(self.decode_latent(z), n_iter)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Features ``[n, 1, n_freq, n_frames]`` of ``n`` latents drawn from the prior N(0, I).

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        return self.ae.decode(self.vae.sample(n, generator))

    def _device(self) -> torch.device:
        return self.vae.to_mu.weight.device
