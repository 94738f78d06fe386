"""The model families, one per module (a config dataclass saved with the weights, no data loading, no display).

Lesson: lessons/02_vae_mnist.ipynb
"""

import torch
from torch import nn


def parameter_count(model: nn.Module) -> int:
    """Number of trainable numbers in ``model`` (all its parameters' elements)."""
    return sum(p.numel() for p in model.parameters())


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Raise ValueError unless ``generator`` is None or on the same device type as the tensors it will fill."""
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device.type} but the tensors are on {device.type}: "
            f"create it with torch.Generator(device={str(device)!r}).manual_seed(seed)."
        )


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A posterior sample by the reparameterisation trick: ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``.

    The noise is drawn apart from the parameters, so gradients flow through ``mu`` and ``logvar``.
    Every VAE of the course samples its posterior with it.

    Args:
        mu, logvar: Tensors of one shape, e.g. ``[batch, latent_dim]``.
        generator: a ``torch.Generator`` on their device, for reproducible noise; default the global one.

    Returns:
        ``z``, a Tensor of the same shape.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"mu has shape {list(mu.shape)} but logvar has {list(logvar.shape)}: they must match.")
    check_generator(generator, mu.device)
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps
