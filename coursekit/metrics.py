"""Numbers that say how close two sounds are.

Lesson: lessons/01_audio_representations.ipynb
"""

from __future__ import annotations

import torch

from coursekit.audio import check_signal


def spectral_convergence(mag_ref: torch.Tensor, mag_est: torch.Tensor) -> float:
    """``||S - S_est||_F / ||S||_F`` between two STFT magnitudes: 0 is identical, 1 is as far as silence.

    Used to measure how well Griffin-Lim recovers a signal from its magnitude.

    Lesson: lessons/01_audio_representations.ipynb
    """
    if mag_ref.shape != mag_est.shape:
        raise ValueError(f"mag_ref has shape {list(mag_ref.shape)} but mag_est has {list(mag_est.shape)}.")
    norm = torch.linalg.vector_norm(mag_ref)
    if norm == 0:
        raise ValueError("mag_ref is all zeros (silence): spectral convergence is undefined.")
    return float(torch.linalg.vector_norm(mag_ref - mag_est) / norm)


def snr_db(ref: torch.Tensor, est: torch.Tensor) -> float:
    """Signal-to-noise ratio ``10 log10(sum ref^2 / sum (ref - est)^2)`` in dB (higher is closer).

    Sample by sample, so it punishes any phase difference: a sound with the right spectrum but
    shifted phases can score below 0 dB.

    Lesson: lessons/01_audio_representations.ipynb
    """
    check_signal(ref, "ref")
    check_signal(est, "est")
    if ref.shape != est.shape:
        raise ValueError(f"ref has shape {list(ref.shape)} but est has {list(est.shape)}.")
    noise = (ref - est).pow(2).sum()
    if noise == 0:
        return float("inf")
    return float(10 * torch.log10(ref.pow(2).sum() / noise))


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Count the latent dimensions a VAE uses: those whose posterior mean varies across the data.

    The activity of dimension ``u`` is ``Var_x(E_q(z|x)[z_u])``, the variance over examples of the
    encoder's mean (Burda et al. 2016, "Importance Weighted Autoencoders"). A dimension
    the decoder ignores collapses to the prior for every ``x``: its mean stays near 0 whatever the
    input, so its activity is near 0 (posterior collapse). Variances are over examples with
    divisor ``n`` (the population variance, as in the definition).

    Args:
        mu: Tensor [n, latent], posterior means of ``n >= 2`` examples (e.g. a validation set).
        threshold: a dimension is active when its activity exceeds this; default 0.01, Burda's value.

    Returns:
        ``(n_active, variances)``: the number of active dimensions, and Tensor [latent] of activities.

    Example::

        mu, _ = model.encode(images)
        n_active, variances = active_units(mu.detach())

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if not isinstance(mu, torch.Tensor) or not mu.is_floating_point():
        raise TypeError(f"mu must be a float torch.Tensor [n, latent], got {type(mu).__name__}.")
    if mu.dim() != 2 or mu.shape[0] < 2:
        raise ValueError(
            f"mu has shape {list(mu.shape)}; expected [n, latent] with n >= 2 examples "
            "(encode a batch of inputs, not one; flatten extra dimensions with mu.reshape(n, -1))."
        )
    if threshold < 0:
        raise ValueError(f"threshold={threshold} must be >= 0 (Burda et al. use 0.01).")
    variances = mu.detach().var(dim=0, correction=0)
    return int((variances > threshold).sum()), variances
