"""An instrument-family classifier on log-mel spectrograms, and the embedding it learns (lesson 08).

A Fréchet distance is only as meaningful as the embedding it compares. MFCC frames (source 001's
choice) mostly measure loudness and spectral tilt; GANSynth compared sets with the features of a
pitch classifier it trained itself. This model plays that part offline: trained on NSynth-mini's
train instruments to name the family of a one-second note, its pooled last convolutional features
(``embed``) describe what a note sounds like, and its predictions check whether a conditional
generator plays the family it was asked for.

Shapes (default settings)::

    audio   [batch, 1, samples]     16 kHz, at least 3,840 samples (0.24 s)
    mel     [batch, 1, 64, frames]  log-mel, hop 256
    embed   [batch, 64]             mean over time and frequency of the last block
    logits  [batch, 11]             NSynth's families in coursekit.data.nsynth.FAMILIES order

Lesson: lessons/08_model_comparison.ipynb
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torchaudio
from torch import nn

from coursekit.config import as_config, config_from_dict


@dataclass
class FamilyClassifierConfig:
    """Everything that builds a :class:`FamilyClassifier`; stored beside its weights.

    Args:
        channels: output channels of each convolutional block (each halves time and frequency).
        n_mels: mel bands of the input spectrogram (64 to 8 kHz).
        n_families: number of classes (11 NSynth families).
        sr: the sample rate it expects, Hz.
    """

    channels: tuple[int, ...] = (16, 32, 64, 64)
    n_mels: int = 64
    n_families: int = 11
    sr: int = 16000

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        for name, value in (("n_mels", self.n_mels), ("n_families", self.n_families), ("sr", self.sr)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name}={value!r} must be a whole number >= 2.")
        if not self.channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels={self.channels!r}: one whole number >= 1 per block, e.g. (16, 32, 64, 64).")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FamilyClassifierConfig:
        return config_from_dict(cls, values)


class FamilyClassifier(nn.Module):
    """Log-mel front end, convolutional blocks (conv 3x3, batch norm, ReLU, 2x2 max-pool), global mean pool.

    Lesson: lessons/08_model_comparison.ipynb
    """

    def __init__(self, config: FamilyClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.mel = torchaudio.transforms.MelSpectrogram(config.sr, n_fft=1024, hop_length=256, n_mels=config.n_mels)
        blocks, c_in = [], 1
        for c_out in config.channels:
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, config.n_families)

    def log_mel(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, 1, samples] -> [batch, 1, n_mels, frames]``: log(mel power + 1e-6), so loudness shows as level."""
        shortest = (2 ** len(self.config.channels) - 1) * 256  # every block halves the frames: at least 1 left
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[-1] < shortest:
            raise ValueError(f"x must be audio [batch, 1, samples >= {shortest}] at {self.config.sr} Hz: "
                             f"{list(x.shape)}.")
        return torch.log(self.mel(x) + 1e-6)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding ``[batch, channels[-1]]`` of audio ``[batch, 1, samples]``: the last block's mean."""
        return self.blocks(self.log_mel(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Family logits ``[batch, n_families]`` of audio ``[batch, 1, samples]``."""
        return self.head(self.embed(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """The most likely family index of each clip, in eval mode: int64 Tensor [batch]."""
        self.eval()
        return torch.cat([self(chunk).argmax(dim=1) for chunk in x.split(batch_size)])

    @torch.no_grad()
    def embeddings(self, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """:meth:`embed` in eval mode, in batches: Tensor [batch, channels[-1]]."""
        self.eval()
        return torch.cat([self.embed(chunk) for chunk in x.split(batch_size)])


def build_family_classifier(config: FamilyClassifierConfig | dict | None = None) -> FamilyClassifier:
    """A :class:`FamilyClassifier` from a config, its dict (as stored in checkpoints) or the defaults.

    Lesson: lessons/08_model_comparison.ipynb
    """
    return FamilyClassifier(as_config(FamilyClassifierConfig, config))


def family_loss(model: FamilyClassifier, batch: dict) -> dict[str, torch.Tensor]:
    """Cross-entropy of the family logits, and the batch's accuracy: ``{"loss", "accuracy"}``.

    ``batch`` is ``{"audio": Tensor [batch, 1, samples], "family": int64 Tensor [batch]}``.
    """
    logits = model(batch["audio"])
    return {"loss": nn.functional.cross_entropy(logits, batch["family"]),
            "accuracy": (logits.argmax(dim=1) == batch["family"]).float().mean()}  # fmt: skip
