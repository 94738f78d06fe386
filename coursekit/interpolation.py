"""Paths between two latents: straight (:func:`lerp`) or along the sphere where Gaussian samples live (:func:`slerp`).

A latent drawn from N(0, I) in many dimensions lies near a sphere of radius about sqrt(d); the
straight line between two of them cuts inside it, through latents the prior almost never draws.
The interpolation sliders of :mod:`coursekit.widgets` use these.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import torch

MODES = ("linear", "slerp")


def _as_latents(z_a: torch.Tensor, z_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.dim() == 0:
            raise TypeError(f"{name} must be a float torch.Tensor [..., latent_dim], got {z!r:.60}.")
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a has shape {list(z_a.shape)} but z_b has {list(z_b.shape)}: they must match.")
    return z_a, z_b


def _as_t(t: float | torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``t`` (a number, or Tensor [n]) shaped to broadcast against ``z`` and add a leading [n]."""
    t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
    if t.dim() > 1:
        raise ValueError(f"t has shape {list(t.shape)}: use a number or a Tensor [n] of positions.")
    return t.reshape(*t.shape, *([1] * z.dim()))


def lerp(z_a: torch.Tensor, z_b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear interpolation ``(1 - t) z_a + t z_b``.

    Args:
        z_a, z_b: Tensors [..., latent_dim] of the same shape.
        t: position, 0 gives ``z_a`` and 1 gives ``z_b``; a number, or Tensor [n] for n positions.

    Returns:
        Tensor shaped like ``z_a``, or [n, *z_a.shape] for a Tensor ``t``.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    z_a, z_b = _as_latents(z_a, z_b)
    t = _as_t(t, z_a)
    return (1 - t) * z_a + t * z_b


def slerp(z_a: torch.Tensor, z_b: torch.Tensor, t: float | torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Spherical linear interpolation (Shoemake 1985; for latents, White 2016 "Sampling Generative Networks").

    ``slerp = sin((1 - t) w) / sin(w) z_a + sin(t w) / sin(w) z_b`` with ``w`` the angle between
    ``z_a`` and ``z_b``. It follows the great circle between unit vectors (so every point keeps
    norm 1), and keeps the norm of two vectors of equal norm; in high dimensions Gaussian latents
    lie near such a sphere while the straight line between them passes closer to the origin.
    Nearly parallel vectors (``sin(w) < eps``) use :func:`lerp`, the limit of the formula.

    Args:
        z_a, z_b: Tensors [..., latent_dim] of the same shape, neither the zero vector.
        t: position, 0 gives ``z_a`` and 1 gives ``z_b``; a number, or Tensor [n] for n positions.
        eps: below this ``sin(w)`` the vectors count as parallel (or opposite).

    Returns:
        Tensor shaped like ``z_a``, or [n, *z_a.shape] for a Tensor ``t``.

    Raises:
        ValueError: for a zero vector or opposite vectors, where no single great circle joins them.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    z_a, z_b = _as_latents(z_a, z_b)
    norm_a = torch.linalg.vector_norm(z_a, dim=-1, keepdim=True)
    norm_b = torch.linalg.vector_norm(z_b, dim=-1, keepdim=True)
    if (norm_a == 0).any() or (norm_b == 0).any():
        raise ValueError("slerp needs two non-zero latents (a zero vector has no direction): use mode='linear'.")
    unit_a, unit_b = z_a / norm_a, z_b / norm_b
    cos = (unit_a * unit_b).sum(dim=-1, keepdim=True).clamp(-1, 1)
    sin = torch.linalg.vector_norm(unit_b - cos * unit_a, dim=-1, keepdim=True)  # exact near 0 and pi, unlike arccos
    omega = torch.atan2(sin, cos)
    if ((sin < eps) & (cos < 0)).any():
        raise ValueError("z_a and z_b point in opposite directions, so slerp has no single path: use mode='linear'.")
    t = _as_t(t, z_a)
    parallel = sin < eps
    safe_sin = torch.where(parallel, torch.ones_like(sin), sin)
    spherical = (torch.sin((1 - t) * omega) * z_a + torch.sin(t * omega) * z_b) / safe_sin
    return torch.where(parallel, (1 - t) * z_a + t * z_b, spherical)


def interpolate(z_a: torch.Tensor, z_b: torch.Tensor, t: float | torch.Tensor, mode: str = "linear") -> torch.Tensor:
    """:func:`lerp` (``mode="linear"``) or :func:`slerp` (``mode="slerp"``) from ``z_a`` to ``z_b``.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: use one of {list(MODES)}.")
    return lerp(z_a, z_b, t) if mode == "linear" else slerp(z_a, z_b, t)
