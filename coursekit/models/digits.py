"""A small digit classifier, and its verdict on a set of generated digits (lesson 02).

The ELBO scores how well a VAE reconstructs real digits; it never looks at what the decoder draws
from the prior. This classifier is lesson 02's judge of those drawings: trained on the real
training digits to name the digit, it reports for any set of images how sure it is of each one
(its largest class probability) and which digits the set covers. Its verdict on held-out real
digits is the baseline that generated digits are read against.

Shapes (default settings)::

    images  [batch, 1, 28, 28]   in [0, 1], 1 = ink (coursekit.data.mnist.MNIST items)
    logits  [batch, 10]          digits 0-9
    probs   [batch, 10]          softmax of the logits, each row sums to 1

Example::

    classifier, _ = load_pretrained("digit_classifier", build_digit_classifier)
    verdict = judge_digits(classifier.probabilities(samples))   # samples [1000, 1, 28, 28]
    verdict["confidence"], verdict["classes"]                    # e.g. 0.93, 10

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from coursekit.config import as_config, config_from_dict

N_DIGITS = 10
COVER_SHARE = 0.01  # a digit counts as covered when at least 1 % of the images are classified as it


@dataclass
class DigitClassifierConfig:
    """Everything that builds a :class:`DigitClassifier`; stored beside its weights.

    Args:
        channels: output channels of each block (conv 3x3, ReLU, 2x2 max-pool): 28 -> 14 -> 7 -> 3 pixels.
        dropout: dropout before the linear head, in training only.

    Lesson: lessons/02_vae_mnist.ipynb
    """

    channels: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.25

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        if len(self.channels) != 3 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                                          for c in self.channels):  # fmt: skip
            raise ValueError(f"channels={self.channels!r}: three whole numbers >= 1, one per block, e.g. (16, 32, 64).")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout!r} must lie in [0, 1).")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DigitClassifierConfig:
        return config_from_dict(cls, values)


class DigitClassifier(nn.Module):
    """Three blocks (conv 3x3, ReLU, 2x2 max-pool), then dropout and a linear layer to 10 digit logits.

    Lesson: lessons/02_vae_mnist.ipynb
    """

    def __init__(self, config: DigitClassifierConfig) -> None:
        super().__init__()
        self.config = config
        blocks, c_in = [], 1
        for c_out in config.channels:
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(c_in * 3 * 3, N_DIGITS))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Digit logits ``[batch, 10]`` of images ``[batch, 1, 28, 28]`` in [0, 1]."""
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
            raise ValueError(f"images must be [batch, 1, 28, 28] in [0, 1]: got {list(images.shape)}.")
        return self.head(self.blocks(images))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Class probabilities ``[batch, 10]`` (softmax of the logits), in eval mode, in batches."""
        self.eval()
        return torch.cat([self(chunk).softmax(dim=1) for chunk in images.split(batch_size)])


def build_digit_classifier(config: DigitClassifierConfig | dict | None = None) -> DigitClassifier:
    """A :class:`DigitClassifier` from a config, its dict (as stored in checkpoints) or the defaults.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    return DigitClassifier(as_config(DigitClassifierConfig, config))


def digit_loss(model: DigitClassifier, batch: dict) -> dict[str, torch.Tensor]:
    """Cross-entropy of the digit logits and the batch's accuracy: ``{"loss", "accuracy"}``.

    ``batch`` is ``{"image": Tensor [batch, 1, 28, 28], "label": int64 Tensor [batch]}`` (an MNIST batch).

    Lesson: lessons/02_vae_mnist.ipynb
    """
    logits = model(batch["image"])
    return {"loss": nn.functional.cross_entropy(logits, batch["label"]),
            "accuracy": (logits.argmax(dim=1) == batch["label"]).float().mean()}  # fmt: skip


def judge_digits(probs: torch.Tensor, cover_share: float = COVER_SHARE) -> dict:
    """What a classifier's probabilities say about a set of images: how sure it is, and which digits it sees.

    Args:
        probs: ``[images, 10]`` class probabilities, rows summing to 1 (:meth:`DigitClassifier.probabilities`).
        cover_share: a digit is covered when at least this share of the images (and at least one) are
            classified as it.

    Returns:
        ``{"confidence": mean largest probability (1 = sure, 0.1 = a uniform guess),
        "entropy": mean entropy of a row in nats (0 = sure, log 10 = 2.30 for a uniform guess),
        "sure": share of images whose largest probability is over 0.9,
        "counts": list of 10 ints, images classified as each digit,
        "classes": how many digits are covered, "top_digit": the most common digit,
        "top_share": its share of the images}``.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if probs.dim() != 2 or probs.shape[1] != N_DIGITS or len(probs) == 0:
        raise ValueError(f"probs must be [images >= 1, {N_DIGITS}]: got {list(probs.shape)}.")
    if not torch.allclose(probs.sum(dim=1), torch.ones(len(probs), dtype=probs.dtype), atol=1e-4):
        raise ValueError("each row of probs must sum to 1: pass softmax probabilities, not logits.")
    top = probs.max(dim=1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=1)
    counts = torch.bincount(top.indices, minlength=N_DIGITS)
    return {
        "confidence": float(top.values.mean()),
        "entropy": float(entropy.mean()),
        "sure": float((top.values > 0.9).float().mean()),
        "counts": counts.tolist(),
        "classes": int((counts >= max(1, math.ceil(cover_share * len(probs) - 1e-9))).sum()),
        "top_digit": int(counts.argmax()),
        "top_share": float(counts.max()) / len(probs),
    }
