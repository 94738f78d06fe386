"""A deterministic per-frame convolutional autoencoder on raw waveforms (source 003's addendum).

Source 003 compressed raw audio with three strided 1-D convolutions to a *sequence* of code
frames, a few numbers for every hop of samples, and three transposed convolutions back, trained
with squared error and no KL term. Lesson 03 trains it beside the naive VAEs, on the same windows
and with the same loss, at two sizes of code, to separate "the bottleneck is too tight" from
"squared error is the wrong loss".

Shapes (default settings)::

    x     [batch, 1, 3000]        one second at 3,000 Hz
    code  [batch, 2, 8]           code_channels numbers for each hop of 5 * 5 * 15 = 375 samples
    x_hat [batch, 1, 3000]

The code holds ``n_frames * code_channels`` numbers, so the compression is
``n_samples / (n_frames * code_channels)``: 187.5x with 2 channels (16 numbers, as many as the
VAEs' latent), 37.5x with 10.

Lesson: lessons/03_raw_audio_pitfalls.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from coursekit.config import as_config, config_from_dict


@dataclass
class FrameAutoencoderConfig:
    """Everything that builds a :class:`FrameAutoencoder`; stored beside its weights.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """

    n_samples: int = 3000  # window length: one second at 3,000 Hz
    strides: tuple[int, ...] = (5, 5, 15)  # each convolution divides the length by its stride; hop = product
    channels: int = 32  # channels of the hidden convolutions
    code_channels: int = 2  # numbers per code frame: 2 gives 16 numbers a window (187.5x), 10 gives 37.5x

    def __post_init__(self) -> None:
        self.strides = tuple(self.strides)
        for name in ("n_samples", "channels", "code_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if not self.strides or any(isinstance(s, bool) or not isinstance(s, int) or s < 2 for s in self.strides):
            raise ValueError(f"strides={self.strides!r}: give whole numbers >= 2, e.g. (5, 5, 15).")
        if self.n_samples % self.hop:
            raise ValueError(
                f"n_samples={self.n_samples} is not divisible by the hop {self.hop} (the product of strides "
                f"{self.strides}): use e.g. n_samples={self.hop * max(1, self.n_samples // self.hop)}."
            )

    @property
    def hop(self) -> int:
        """Samples per code frame: the product of the strides."""
        return math.prod(self.strides)

    @property
    def n_frames(self) -> int:
        """Code frames per window."""
        return self.n_samples // self.hop

    @property
    def compression(self) -> float:
        """Samples in a window over numbers in its code."""
        return self.n_samples / (self.n_frames * self.code_channels)

    def to_dict(self) -> dict:
        """A JSON-ready dict, for checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> FrameAutoencoderConfig:
        """The config :meth:`to_dict` wrote; raises ValueError naming unknown keys."""
        return config_from_dict(cls, values)


class FrameAutoencoder(nn.Module):
    """Strided 1-D convolutions to a code sequence and transposed convolutions back; no sampling anywhere.

    Each convolution has a kernel twice its stride, so neighbouring frames overlap by half a kernel.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """

    def __init__(self, config: FrameAutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        widths = (1, *([config.channels] * (len(config.strides) - 1)), config.code_channels)
        encoder: list[nn.Module] = []
        decoder: list[nn.Module] = []
        for i, s in enumerate(config.strides):
            pad = (s + 1) // 2  # with kernel 2s: length L -> L / s, and back
            encoder.append(nn.Conv1d(widths[i], widths[i + 1], 2 * s, stride=s, padding=pad))
            if i < len(config.strides) - 1:
                encoder.append(nn.ReLU())
        for i, s in reversed(list(enumerate(config.strides))):
            pad = (s + 1) // 2
            decoder.append(nn.ConvTranspose1d(widths[i + 1], widths[i], 2 * s, stride=s, padding=pad,
                                              output_padding=2 * pad - s))  # fmt: skip
            if i > 0:
                decoder.append(nn.ReLU())
        self.encoder, self.decoder = nn.Sequential(*encoder), nn.Sequential(*decoder)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code ``[batch, code_channels, n_frames]`` of windows ``x [batch, 1, n_samples]``."""
        n = self.config.n_samples
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != n:
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x has shape {shape}; expected [batch, 1, {n}] (mono windows of n_samples={n}).")
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Windows ``[batch, 1, n_samples]`` from codes ``[batch, code_channels, n_frames]``."""
        expected = [self.config.code_channels, self.config.n_frames]
        if code.dim() != 3 or list(code.shape[1:]) != expected:
            raise ValueError(f"code has shape {list(code.shape)}; expected [batch, {expected[0]}, {expected[1]}].")
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``: Tensor ``[batch, 1, n_samples]``."""
        return self.decode(self.encode(x))


def build_frame_autoencoder(config: FrameAutoencoderConfig | dict | None = None) -> FrameAutoencoder:
    """A :class:`FrameAutoencoder` from a config or the dict a checkpoint stores.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    return FrameAutoencoder(as_config(FrameAutoencoderConfig, config))
