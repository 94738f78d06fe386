"""A spectrogram VAE in two stages: a Conv2D autoencoder, then a small VAE core on its codes.

This follows source 003. A note becomes an image of STFT magnitudes (:class:`SpectrogramFeatures`:
2 s, a -70 dB floor, mu-law with ``mu = 8``, values in [0, 1]); a deterministic convolutional
autoencoder (:class:`SpectrogramAE`, stage 1) squeezes each image into a code of 64 numbers; a
small fully connected VAE (:class:`LatentVAE`, stage 2, the "VAE core") maps codes to 6 latent
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

import hashlib
import json
import math
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from coursekit import audio, checkpoints
from coursekit import config as course_config
from coursekit.config import config_from_dict
from coursekit.files import atomic_write
from coursekit.losses import gaussian_nll, kl_divergence

VARIANCES = ("fixed", "isotropic")
OUTPUT_BIAS = -4.6  # the autoencoder's last bias at initialisation: sigmoid(-4.6) = 0.01, a typical feature value
_FEATURES_FORMAT = 1  # bump when SpectrogramFeatures.encode changes, so cached features are recomputed


# ----------------------------------------------------------------------------- features
@dataclass(frozen=True)
class SpectrogramFeatures:
    """How a mono note becomes a ``[1, n_freq, n_frames]`` image in [0, 1], and back (source 003).

    :meth:`encode`, step by step:

    1. trim or pad to ``duration`` seconds (``n_samples = 32000``), then peak-normalise to 1;
    2. STFT magnitude (Hann window ``n_fft = 512``, hop 256: bins of 31.25 Hz, frames of 16 ms,
       ``1 + 32000 // 256 = 126`` frames), dropping the Nyquist bin: 257 -> 256 bins;
    3. divide by :attr:`reference`, the largest magnitude any signal in [-1, 1] can reach
       (``sum(window) = n_fft / 2 = 256``): values lie in [0, 1] and never clip. A full-scale
       sine reads 0.5 (-6 dB), a typical NSynth-mini note peaks near 0.25 (-12 dB);
    4. set bins below ``floor_db`` (-70 dB relative to that reference) to exactly 0;
    5. mu-law compress, ``ln(1 + mu m) / ln(1 + mu)`` with ``mu = 8``: a -40 dB partial
       (``m = 0.01``) rises to 0.035, a full-scale sine to 0.73;
    6. pad the frames with silence (zeros) to ``n_frames = 128``, a size four stride-2 layers halve.

    The reference is fixed, not each note's own peak, so the map is invertible: :meth:`decode`
    undoes steps 6 to 2 exactly for every bin above the floor (the phase is estimated by
    Griffin-Lim) and returns a waveform at the level of the peak-normalised input.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    sr: int = 16000  # Hz
    duration: float = 2.0  # seconds of each note kept (NSynth notes: 4 s, held for 3)
    n_fft: int = 512  # STFT window and FFT length, samples
    hop_length: int = 256  # samples between frames
    floor_db: float = -70.0  # dB relative to `reference`; quieter bins become 0
    mu: float = 8.0  # mu-law companding of the scaled magnitudes
    n_freq: int = 256  # frequency bins kept: n_fft // 2 (the Nyquist bin is dropped)
    n_frames: int = 128  # frames after padding; at least 1 + n_samples // hop_length

    def __post_init__(self) -> None:
        audio.check_sr(self.sr)
        for name in ("n_fft", "hop_length", "n_freq", "n_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if not self.duration > 0 or not self.mu > 0 or not self.floor_db < 0:
            raise ValueError(
                f"duration={self.duration}, mu={self.mu} must be positive and floor_db={self.floor_db} negative "
                "(e.g. 2.0 s, mu 8, -70 dB)."
            )
        if self.n_freq != self.n_fft // 2:
            raise ValueError(f"n_freq={self.n_freq} must be n_fft // 2 = {self.n_fft // 2} (only Nyquist is dropped).")
        if self.n_frames < self.n_stft_frames:
            raise ValueError(
                f"n_frames={self.n_frames} is fewer than the {self.n_stft_frames} STFT frames of "
                f"{self.duration} s: use n_frames >= {self.n_stft_frames} or a shorter duration."
            )
        if self.n_fft > self.n_samples:
            raise ValueError(f"n_fft={self.n_fft} is longer than the {self.n_samples} samples of a note.")

    @property
    def n_samples(self) -> int:
        """Samples per note: ``round(duration * sr)`` (32000)."""
        return round(self.duration * self.sr)

    @property
    def n_stft_frames(self) -> int:
        """STFT frames of a note before padding: ``1 + n_samples // hop_length`` (126)."""
        return 1 + self.n_samples // self.hop_length

    @property
    def reference(self) -> float:
        """The magnitude that scales to 1: ``sum(hann window) = n_fft / 2``, the most any [-1, 1] signal reaches."""
        return self.n_fft / 2

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one note's features: ``(1, n_freq, n_frames)``."""
        return (1, self.n_freq, self.n_frames)

    @property
    def floor(self) -> float:
        """The floor as a scaled magnitude: ``10 ** (floor_db / 20)`` (3.2e-4 for -70 dB)."""
        return 10 ** (self.floor_db / 20)

    def to_dict(self) -> dict:
        """A JSON-ready dict, for checkpoints and cache keys."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SpectrogramFeatures:
        """The settings :meth:`to_dict` wrote; raises ValueError naming unknown keys."""
        return config_from_dict(cls, values)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features of mono notes, values in [0, 1] (see the class docstring for the steps).

        Args:
            x: Tensor ``[samples]``, ``[1, samples]`` or ``[batch, 1, samples]`` in [-1, 1] at ``sr`` Hz,
                any length (trimmed or zero-padded to ``n_samples``).

        Returns:
            Tensor ``[1, n_freq, n_frames]`` (for one note) or ``[batch, 1, n_freq, n_frames]``.

        Raises:
            ValueError: wrong rank, more than one channel, NaN or inf samples.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        audio.check_signal(x, "x")
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if x.shape[-2] != 1:
            raise ValueError(
                f"x has shape {list(x.shape)} with {x.shape[-2]} channels; the features are mono: "
                "mix down with coursekit.audio.to_mono(x) (or pass a batch as [batch, 1, samples])."
            )
        x = audio.peak_normalize(audio.trim_or_pad(x, self.n_samples))
        mag = audio.stft(x, self.n_fft, self.hop_length).abs()[..., : self.n_freq, :] / self.reference
        mag = torch.where(mag >= self.floor, mag.clamp(max=1.0), torch.zeros_like(mag))
        features = audio.mu_law_compress(mag, self.mu)
        return F.pad(features, (0, self.n_frames - features.shape[-1]))

    def to_magnitude(self, features: torch.Tensor) -> torch.Tensor:
        """Undo the scaling: STFT magnitudes ``[..., 1, n_fft // 2 + 1, n_stft_frames]`` for :func:`audio.griffin_lim`.

        Expands the mu-law, sets bins below the floor to 0 (a model's near-zero outputs become
        silence, not hiss), multiplies by :attr:`reference`, restores the Nyquist bin as zeros and
        crops the padding frames.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        check_features(features, self.shape)
        mag = audio.mu_law_expand(features[..., : self.n_stft_frames], self.mu)
        mag = torch.where(mag >= self.floor, mag, torch.zeros_like(mag)) * self.reference
        return F.pad(mag, (0, 0, 0, 1))

    def decode(self, features: torch.Tensor, n_iter: int = 32, seed: int | None = 0) -> torch.Tensor:
        """Audio from features: :meth:`to_magnitude`, then Griffin-Lim for the phase.

        Args:
            features: Tensor ``[1, n_freq, n_frames]`` or ``[batch, 1, n_freq, n_frames]`` in [0, 1].
            n_iter: Griffin-Lim iterations (32 take about 0.03 s per note on one CPU thread).
            seed: seeds Griffin-Lim's random starting phase, so decoding is repeatable; None: global RNG.

        Returns:
            Tensor ``[1, n_samples]`` or ``[batch, 1, n_samples]`` at ``sr`` Hz, at the level of the
            peak-normalised input (it may peak a little above 1: normalise before saving).

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        mag = self.to_magnitude(features.detach())
        return audio.griffin_lim(mag, self.n_fft, self.hop_length, n_iter=n_iter, length=self.n_samples, seed=seed)


def check_features(features: torch.Tensor, shape: tuple[int, int, int], name: str = "features") -> None:
    """Raise a clear error unless ``features`` is a finite float Tensor ``[(batch,) *shape]`` in [0, 1].

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        got = features.dtype if isinstance(features, torch.Tensor) else type(features).__name__
        raise TypeError(f"{name} must be a float torch.Tensor {list(shape)}, got {got}.")
    if features.dim() not in (3, 4) or tuple(features.shape[-3:]) != tuple(shape):
        raise ValueError(
            f"{name} has shape {list(features.shape)}; expected {list(shape)} or "
            f"[batch, {', '.join(map(str, shape))}]: make features with SpectrogramFeatures().encode(audio)."
        )
    if not torch.isfinite(features).all():
        raise ValueError(f"{name} contains NaN or inf: check the model or step that produced it.")
    low, high = float(features.min()), float(features.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name} has values in [{low:.3g}, {high:.3g}]; features lie in [0, 1]: use .clamp(0, 1).")


def _check_whole(value: Any, name: str, lowest: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ValueError(f"{name}={value!r} must be a whole number >= {lowest}.")


# ----------------------------------------------------------------------------- stage 1: the autoencoder
@dataclass
class SpectrogramAEConfig:
    """Everything that builds a :class:`SpectrogramAE`; stored beside the weights in checkpoints.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    channels: tuple[int, ...] = (16, 32, 64, 64)  # one stride-2 block each: 256x128 -> 128x64 -> ... -> 16x8
    code_dim: int = 64  # size of the code: 512 times fewer numbers than the 32,768 of the features
    batch_norm: bool = True  # BatchNorm2d after every hidden convolution (faster, steadier training)
    n_freq: int = 256  # input height: SpectrogramFeatures.n_freq
    n_frames: int = 128  # input width: SpectrogramFeatures.n_frames

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels) if isinstance(self.channels, list | tuple) else self.channels
        if not isinstance(self.channels, tuple) or not self.channels:
            raise ValueError(f"channels={self.channels!r}: give one positive channel count per block, e.g. (16, 32).")
        for i, c in enumerate(self.channels):
            _check_whole(c, f"channels[{i}]")
        for name in ("code_dim", "n_freq", "n_frames"):
            _check_whole(getattr(self, name), name)
        step = 2 ** len(self.channels)
        if self.n_freq % step or self.n_frames % step:
            raise ValueError(
                f"n_freq={self.n_freq} and n_frames={self.n_frames} must be divisible by 2 ** len(channels) = {step}: "
                "use fewer blocks or pad the features."
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
        _check_batch(features, self.input_shape, "features")
        return self.encoder(features)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Features of codes: ``[batch, code_dim]`` -> ``[batch, 1, n_freq, n_frames]`` in (0, 1).

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        _check_batch(code, (self.config.code_dim,), "code")
        return self.decoder(code)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``decode(encode(features))``: Tensor ``[batch, 1, n_freq, n_frames]``."""
        return self.decode(self.encode(features))


def _block(conv: nn.Conv2d | nn.ConvTranspose2d, norm: bool) -> list[nn.Module]:
    """``conv``, batch norm when ``norm``, then ReLU."""
    return [conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU()] if norm else [conv, nn.ReLU()]


def _check_batch(t: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    """Raise unless ``t`` is a finite float Tensor ``[batch, *shape]``."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise TypeError(f"{name} must be a float torch.Tensor [batch, {', '.join(map(str, shape))}], got {got}.")
    if t.dim() != len(shape) + 1 or tuple(t.shape[1:]) != tuple(shape):
        same = tuple(t.shape) == tuple(shape)
        hint = f"add the batch dimension with {name}.unsqueeze(0)" if same else "check what produced it"
        raise ValueError(f"{name} has shape {list(t.shape)}; expected [batch, {', '.join(map(str, shape))}]: {hint}.")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf: check the step that produced it.")


def build_spectrogram_ae(config: SpectrogramAEConfig | dict | None = None) -> SpectrogramAE:
    """A fresh :class:`SpectrogramAE` (initialised from the global torch seed) for a config or its dict.

    Example::

        ae = build_spectrogram_ae()                                   # the default, about 1.3M parameters
        ae, ckpt = checkpoints.load_pretrained("spec_ae_nsynth", build_spectrogram_ae)

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    config = SpectrogramAEConfig() if config is None else config
    if isinstance(config, dict):
        config = SpectrogramAEConfig.from_dict(config)
    if not isinstance(config, SpectrogramAEConfig):
        raise TypeError(f"config must be a SpectrogramAEConfig or a dict of its fields, got {type(config).__name__}.")
    return SpectrogramAE(config)


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


# ----------------------------------------------------------------------------- stage 2: the VAE core
@dataclass
class LatentVAEConfig:
    """Everything that builds a :class:`LatentVAE`; stored beside the weights in checkpoints.

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
            _check_whole(getattr(self, name), name)
        if self.variance not in VARIANCES:
            raise ValueError(f"variance={self.variance!r}: use one of {list(VARIANCES)}.")
        sigma = self.output_sigma
        if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma > 0:
            raise ValueError(f"output_sigma={self.output_sigma!r} must be a positive number, e.g. 1.0.")

    def to_dict(self) -> dict:
        """A JSON-ready dict, for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> LatentVAEConfig:
        """The config :meth:`to_dict` wrote; raises ValueError naming unknown keys."""
        return config_from_dict(cls, values)


class LatentVAE(nn.Module):
    """Stage 2, the VAE core: an MLP VAE on codes ``[batch, code_dim]`` with ``latent_dim`` latents.

    ``code -> (Linear + ReLU) x depth -> mu, logvar [batch, latent_dim]``; ``z -> (Linear + ReLU)
    x depth -> Linear -> mean code``. The decoder is a Gaussian ``N(mean, sigma^2 I)``. With
    ``variance="isotropic"`` sigma is one learned scalar: it settles at the root mean squared
    error of the reconstruction, which weighs the reconstruction against the KL automatically (a
    fixed sigma much larger than the error lets the KL win, and the latents collapse to the prior).
    The ELBO of a continuous density can be negative: lower is still better.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    def __init__(self, config: LatentVAEConfig) -> None:
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
        _check_batch(code, (self.config.code_dim,), "code")
        hidden = self.encoder(code)
        return self.to_mu(hidden), self.to_logvar(hidden)

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``: Tensor ``[batch, latent_dim]``.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        if mu.shape != logvar.shape:
            raise ValueError(f"mu has shape {list(mu.shape)} but logvar has {list(logvar.shape)}: they must match.")
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean code ``[batch, code_dim]`` for latents ``z [batch, latent_dim]``.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        _check_batch(z, (self.config.latent_dim,), "z")
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
        _check_whole(n, "n")
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=self.to_mu.weight.device)
        return self.decode(z)


def _mlp(widths: list[int]) -> list[nn.Module]:
    """Linear + ReLU layers through ``widths``."""
    return [m for a, b in zip(widths[:-1], widths[1:], strict=True) for m in (nn.Linear(a, b), nn.ReLU())]


def build_latent_vae(config: LatentVAEConfig | dict | None = None) -> LatentVAE:
    """A fresh :class:`LatentVAE` (initialised from the global torch seed) for a config or its dict.

    Example::

        vae, ckpt = checkpoints.load_pretrained("spec_vae_nsynth", build_latent_vae)

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    config = LatentVAEConfig() if config is None else config
    if isinstance(config, dict):
        config = LatentVAEConfig.from_dict(config)
    if not isinstance(config, LatentVAEConfig):
        raise TypeError(f"config must be a LatentVAEConfig or a dict of its fields, got {type(config).__name__}.")
    return LatentVAE(config)


def latent_vae_loss(
    model: LatentVAE, batch: dict, beta: float = 1.0, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Negative ELBO of a batch of codes, in the form :func:`coursekit.train.fit` takes.

    Args:
        model: a :class:`LatentVAE`.
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


# ----------------------------------------------------------------------------- the two stages together
class SpectrogramVAE(nn.Module):
    """Audio -> features -> code -> latent and back: :class:`SpectrogramFeatures`, a trained
    :class:`SpectrogramAE` and a :class:`LatentVAE` on its codes.

    The helpers run without gradients, in whatever mode the parts are in (call ``.eval()`` after
    building; :func:`load_spectrogram_vae` does). Train the parts themselves, ``.ae`` and ``.vae``.

    Example::

        model = load_spectrogram_vae()
        mu, _ = model.encode_audio(notes)          # [b, 1, samples] -> [b, 6]
        out = model.latent_to_audio(mu)            # [b, 1, 32000]

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    def __init__(self, ae: SpectrogramAE, vae: LatentVAE, features: SpectrogramFeatures | None = None) -> None:
        super().__init__()
        self.features = SpectrogramFeatures() if features is None else features
        if ae.config.code_dim != vae.config.code_dim:
            raise ValueError(
                f"the autoencoder makes codes of {ae.config.code_dim} but the VAE core takes {vae.config.code_dim}: "
                "train the VAE core on this autoencoder's codes (LatentVAEConfig(code_dim=...))."
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


AE_CHECKPOINT = "spec_ae_nsynth"
VAE_CHECKPOINT = "spec_vae_nsynth"


def load_spectrogram_vae(
    ae_name: str = AE_CHECKPOINT, vae_name: str = VAE_CHECKPOINT, map_location: str | torch.device = "cpu"
) -> SpectrogramVAE:
    """The shipped two-stage model, in eval mode, from the checkpoints ``ae_name`` and ``vae_name``.

    Warns when the VAE core was trained on codes of another autoencoder file (its recorded SHA-256
    differs): retrain it with ``python -m coursekit.train spec_vae_nsynth``.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    ae, ae_ckpt = checkpoints.load_pretrained(ae_name, build_spectrogram_ae, map_location)
    vae, vae_ckpt = checkpoints.load_pretrained(vae_name, build_latent_vae, map_location)
    trained_on = vae_ckpt["metrics"].get("ae_sha256")
    if trained_on is not None and trained_on != checkpoints.list_pretrained()[ae_name]["sha256"]:
        warnings.warn(
            f"{vae_name} was trained on the codes of another {ae_name} file: its latents may decode badly. "
            f"Retrain it with `{checkpoints.list_pretrained()[vae_name]['recipe']}`.",
            stacklevel=2,
        )
    features = SpectrogramFeatures.from_dict(ae_ckpt["metrics"].get("features", {}))
    return SpectrogramVAE(ae, vae, features).eval()


# ----------------------------------------------------------------------------- datasets
class NoteTensors(Dataset):
    """Per-note tensors held in memory: items ``{name: tensors[name][i], ..., "note_str": str}``.

    ``tensors`` maps a name (``"features"``, ``"code"``, ``"family"``, ``"pitch"``) to a Tensor
    whose first dimension counts notes. A DataLoader batches them as usual (note_str as a list).

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    def __init__(self, tensors: dict[str, torch.Tensor], note_str: list[str]) -> None:
        lengths = {name: len(t) for name, t in tensors.items()}
        if any(n != len(note_str) for n in lengths.values()):
            raise ValueError(f"every tensor needs one row per note ({len(note_str)} notes), got {lengths}.")
        self.tensors, self.note_str = tensors, list(note_str)

    def __len__(self) -> int:
        return len(self.note_str)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {name: t[index] for name, t in self.tensors.items()} | {"note_str": self.note_str[index]}

    def select(self, indices: list[int] | slice) -> NoteTensors:
        """The notes at ``indices`` (a list or a slice) as a new :class:`NoteTensors`: ``data.select(slice(8))``."""
        rows = list(range(len(self)))[indices] if isinstance(indices, slice) else list(indices)
        index = torch.tensor(rows, dtype=torch.long)
        return NoteTensors({name: t[index] for name, t in self.tensors.items()}, [self.note_str[i] for i in rows])


_FEATURE_CACHE: dict[str, NoteTensors] = {}


def nsynth_features(
    split: str = "train",
    size: str | int = "mini",
    features: SpectrogramFeatures | None = None,
    seed: int = 0,
    root: str | Path | None = None,
    disk_cache: bool = False,
) -> NoteTensors:
    """Features of every NSynth-mini note of a split, computed once per process and kept in memory.

    Items: ``{"features": [1, n_freq, n_frames], "family": int (index into
    coursekit.data.nsynth.FAMILIES), "pitch": MIDI key, "note_str": str}``. The 1,140 train notes
    take about 3 s on one CPU thread (reading the wavs, then the STFTs) and 150 MB of memory.

    Args:
        split, size, seed, root: as :class:`coursekit.data.nsynth.NSynthMini` (size "tiny" for FAST mode).
        features: the settings; default :class:`SpectrogramFeatures`.
        disk_cache: also keep them in ``config.data_dir() / "spectrogram_features-<size>-seed<seed>-<split>.pt"``
            (about as fast as recomputing at this size, so off by default).

    Returns:
        A :class:`NoteTensors`, as :func:`notes_features` returns it.

    Example::

        train = nsynth_features("train")
        batch = next(iter(DataLoader(train, batch_size=16, shuffle=True)))   # batch["features"]: [16, 1, 256, 128]

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    from coursekit.data.nsynth import NSynthMini

    notes = NSynthMini(split, size=size, seed=seed, root=root)
    cache_file = course_config.data_dir() / f"spectrogram_features-{size}-seed{seed}-{split}.pt" if disk_cache else None
    return notes_features(notes, features, cache_file=cache_file)


def notes_features(
    notes: Dataset,
    features: SpectrogramFeatures | None = None,
    cache_file: str | Path | None = None,
    batch_size: int = 64,
) -> NoteTensors:
    """Features of every note of an :class:`coursekit.data.nsynth.NSynth` dataset (the real NSynth too).

    Computed once per process: a second call with the same notes (same files, same sizes and
    modification times) and settings returns the same :class:`NoteTensors` from memory.

    Args:
        notes: an ``NSynth`` (or ``NSynthMini``) dataset at ``features.sr``.
        features: the settings; default :class:`SpectrogramFeatures`.
        cache_file: also keep the result in this ``.pt`` file, written atomically and reused while
            its recorded key (files and settings) still matches; None keeps them in memory only.
        batch_size: notes per STFT call while computing.

    Returns:
        A :class:`NoteTensors` with ``"features" [n, 1, n_freq, n_frames]``, ``"family" [n]``,
        ``"pitch" [n]`` and ``note_str``; its tensors are shared with later calls, so do not edit
        them in place.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    features = SpectrogramFeatures() if features is None else features
    if getattr(notes, "sr", features.sr) != features.sr:
        raise ValueError(
            f"the notes are at {notes.sr} Hz but the features expect {features.sr} Hz: "
            f"load them with sr={features.sr}, or use SpectrogramFeatures(sr={notes.sr})."
        )
    key = _cache_key(notes, features)
    if key in _FEATURE_CACHE:
        return _FEATURE_CACHE[key]
    dataset = _read_feature_cache(Path(cache_file), key) if cache_file is not None else None
    if dataset is None:
        dataset = _compute_features(notes, features, batch_size)
        if cache_file is not None:
            _write_feature_cache(Path(cache_file), key, dataset)
    _FEATURE_CACHE[key] = dataset
    return dataset


def _cache_key(notes, features: SpectrogramFeatures) -> str:
    """A digest of what the features depend on: each note's wav (path, size, mtime) and the settings."""
    digest = hashlib.sha256(json.dumps([features.to_dict(), _FEATURES_FORMAT]).encode())
    audio_dir = notes.folder / "audio"
    for example in notes.examples:
        path = audio_dir / f"{example['note_str']}.wav"
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{example['instrument_family']}|"
                      f"{example['pitch']}\n".encode())  # fmt: skip
    return digest.hexdigest()


def _compute_features(notes, features: SpectrogramFeatures, batch_size: int) -> NoteTensors:
    loader = DataLoader(notes, batch_size=batch_size, collate_fn=_collate_notes)
    parts: dict[str, list] = {"features": [], "family": [], "pitch": [], "note_str": []}
    for batch in loader:
        parts["features"].append(features.encode(batch["audio"]))
        parts["family"].append(batch["family"])
        parts["pitch"].append(batch["pitch"])
        parts["note_str"] += batch["note_str"]
    tensors = {name: torch.cat(parts[name]) for name in ("features", "family", "pitch")}
    return NoteTensors(tensors, parts["note_str"])


def _collate_notes(items: list[dict]) -> dict[str, Any]:
    return {
        "audio": torch.stack([item["audio"] for item in items]),
        "family": torch.tensor([item["instrument_family"] for item in items]),
        "pitch": torch.tensor([item["pitch"] for item in items]),
        "note_str": [item["note_str"] for item in items],
    }


def _read_feature_cache(path: Path, key: str) -> NoteTensors | None:
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, weights_only=True)
    except Exception as err:  # a truncated or foreign file: recompute and overwrite it
        warnings.warn(f"ignoring the unreadable feature cache {path} ({err}); recomputing it.", stacklevel=3)
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    return NoteTensors(stored["tensors"], stored["note_str"])


def _write_feature_cache(path: Path, key: str, dataset: NoteTensors) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"key": key, "tensors": dataset.tensors, "note_str": dataset.note_str}
    atomic_write(path, lambda file: torch.save(payload, file))


@torch.no_grad()
def pre_encode(ae: SpectrogramAE, dataset: NoteTensors, batch_size: int = 128) -> NoteTensors:
    """Codes of every note by a trained autoencoder (in eval mode): the stage-2 training data.

    Encoding once and training the VAE core on the stored codes ("pre-encoded data", source 003)
    replaces a pass through the convolutional encoder per step by a table lookup.

    Args:
        ae: the trained stage-1 model; it is put in eval mode (batch norm uses its running statistics).
        dataset: a :class:`NoteTensors` with ``"features"``, as :func:`nsynth_features` returns.
        batch_size: notes per forward pass.

    Returns:
        A :class:`NoteTensors` with ``"code": [code_dim]`` in place of ``"features"``, other columns kept.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if "features" not in dataset.tensors:
        raise ValueError(f"dataset has columns {sorted(dataset.tensors)}; pre_encode needs 'features'.")
    ae.eval()
    device = next(ae.parameters()).device
    feats = dataset.tensors["features"]
    codes = torch.cat([ae.encode(feats[i : i + batch_size].to(device)).cpu() for i in range(0, len(feats), batch_size)])
    others = {name: t for name, t in dataset.tensors.items() if name != "features"}
    return NoteTensors({"code": codes, **others}, dataset.note_str)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable numbers in ``model``."""
    return sum(p.numel() for p in model.parameters())
