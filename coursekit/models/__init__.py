"""The model families, one per module (a config dataclass saved with the weights, no data loading, no display).

Lesson: lessons/02_vae_mnist.ipynb
"""

from torch import nn


def parameter_count(model: nn.Module) -> int:
    """Number of trainable numbers in ``model`` (all its parameters' elements)."""
    return sum(p.numel() for p in model.parameters())
