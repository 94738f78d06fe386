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
