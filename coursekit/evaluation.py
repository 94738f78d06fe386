"""Judging a generator by the set of sounds it makes (source 001, rebuilt): pitch in MIDI numbers,
distances between sets of embeddings, and diversity.

Source 001 counted "unique pitches" and a "pitch range" in raw Hz from a frame-wise tracker, so every
vibrato wobble was a new pitch, and reported Fréchet distances on MFCCs with no scale to judge them by.
Here:

- pitch is CREPE's, one MIDI number per note (the median over its voiced frames), so counts and ranges
  are in notes and semitones (:func:`voiced_frames`, :func:`note_pitches`, :func:`pitch_statistics`); the document's Hz
  figures are kept beside them (:func:`frame_pitches_hz`, :func:`hz_counts`) to show why they mislead;
- pitch-class histograms are compared by a KL divergence with its direction and smoothing stated
  (:func:`histogram_kl`), and a generator asked for a pitch is scored by how often it plays it
  (:func:`pitch_accuracy`, as GANSynth reports);
- sets of embeddings ``[n, d]`` are compared by the Fréchet distance (:func:`frechet_distance`, biased
  at small n) and the kernel distance (:func:`kernel_distance`, unbiased), on any embedding:
  MFCC frames as the document used (:func:`mfcc_frames`) or a classifier's features;
- diversity is the number of statistically different bins (:func:`different_bins`, Richardson and
  Weiss 2018), so a generator that plays one good note every time does not win.

Lesson: lessons/08_model_comparison.ipynb
"""

from __future__ import annotations

import math

import numpy as np
import torch

from coursekit import audio
from coursekit.metrics import CREPE_SR, crepe_cents

MIDI_OF_10_HZ = 69 + 12 * math.log2(10.0 / 440.0)  # CREPE counts cents above 10 Hz


def _check_clips(clips: torch.Tensor, name: str = "clips") -> None:
    if not isinstance(clips, torch.Tensor) or clips.dim() != 3 or clips.shape[1] != 1 or len(clips) == 0:
        shape = list(clips.shape) if isinstance(clips, torch.Tensor) else type(clips).__name__
        raise ValueError(f"{name} must be a Tensor [n >= 1, 1, samples] of mono clips, got {shape}.")


def _crepe_frames(clip: torch.Tensor, sr: int, threshold: float) -> torch.Tensor:
    """MIDI numbers (fractional) of the voiced 20 ms frames of one clip [1, samples]."""
    cents, confidence = crepe_cents(audio.resample(clip, sr, CREPE_SR))
    return (cents / 100 + MIDI_OF_10_HZ)[confidence > threshold]


def voiced_frames(clips: torch.Tensor, sr: int, threshold: float = 0.5) -> list[torch.Tensor]:
    """CREPE's pitch of every voiced 20 ms frame of each clip, as fractional MIDI numbers.

    The one CREPE pass behind :func:`note_pitches` and :func:`frame_pitches_hz`; call it once and use
    :func:`frame_medians` and :func:`midi_to_hz` when both are needed. About 0.25 s per second of
    audio on one core (220 one-second notes in 54 s); it runs on every core
    (:func:`coursekit.metrics.every_core`).

    Args:
        clips: Tensor [n, 1, samples].
        sr: their sample rate in Hz.
        threshold: a frame is voiced when CREPE's confidence exceeds it.

    Returns:
        A list of n Tensors [voiced frames of that clip] (empty for silence or noise).

    Lesson: lessons/08_model_comparison.ipynb
    """
    _check_clips(clips)
    return [_crepe_frames(clip, sr, threshold) for clip in clips]


def frame_medians(frames: list[torch.Tensor]) -> torch.Tensor:
    """One pitch per clip from :func:`voiced_frames`: the median of its voiced frames, ``nan`` when none.

    Lesson: lessons/08_model_comparison.ipynb
    """
    return torch.stack([f.median() if len(f) else torch.tensor(float("nan")) for f in frames]).float()


def midi_to_hz(midi: torch.Tensor) -> torch.Tensor:
    """Frequencies in Hz of (fractional) MIDI numbers: ``440 * 2 ** ((midi - 69) / 12)``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    return 440.0 * 2 ** ((midi - 69) / 12)


def note_pitches(clips: torch.Tensor, sr: int, threshold: float = 0.5) -> torch.Tensor:
    """One pitch per clip: CREPE's median over its voiced frames, as a fractional MIDI number.

    Returns:
        Tensor [n] of MIDI numbers (69.0 is A4, 440 Hz); ``nan`` for a clip with no voiced frame
        (silence, noise).

    Lesson: lessons/08_model_comparison.ipynb
    """
    return frame_medians(voiced_frames(clips, sr, threshold))


def frame_pitches_hz(clips: torch.Tensor, sr: int, threshold: float = 0.5) -> torch.Tensor:
    """Every voiced 20 ms frame's pitch in Hz, all clips together: the raw values source 001 counted.

    Returns:
        Tensor [voiced frames] in Hz.

    Lesson: lessons/08_model_comparison.ipynb
    """
    return midi_to_hz(torch.cat(voiced_frames(clips, sr, threshold)))


def hz_counts(frames_hz: torch.Tensor) -> dict[str, float]:
    """Source 001's pitch figures: distinct frame pitches (to 0.01 Hz) and their range in Hz.

    Both grow with the number of frames and with any vibrato or noise, whatever the notes are: a
    single held note tracked for 200 frames can give 200 "unique pitches".

    Lesson: lessons/08_model_comparison.ipynb
    """
    if len(frames_hz) == 0:
        return {"distinct_hz": 0, "range_hz": float("nan")}
    return {"distinct_hz": len(torch.unique(torch.round(frames_hz * 100))),
            "range_hz": float(frames_hz.max() - frames_hz.min())}  # fmt: skip


def pitch_class_histogram(midi: torch.Tensor) -> torch.Tensor:
    """Counts of the 12 pitch classes (0 is C) among the voiced notes of ``midi`` [n] (nan is skipped).

    Lesson: lessons/08_model_comparison.ipynb
    """
    voiced = midi[~torch.isnan(midi)]
    return torch.bincount(torch.round(voiced).long() % 12, minlength=12).float()


def pitch_statistics(midi: torch.Tensor) -> dict[str, float]:
    """Pitch figures of a set of notes, in notes and semitones (each note rounded to its MIDI key).

    Returns:
        ``{"voiced": notes with a pitch, "distinct": distinct MIDI keys, "range_semitones": highest
        minus lowest key, "class_entropy_bits": entropy of the pitch-class histogram, 0 to log2(12) =
        3.58 bits}``. Entropy is neither good nor bad on its own: compare it with the real data's.

    Lesson: lessons/08_model_comparison.ipynb
    """
    keys = torch.round(midi[~torch.isnan(midi)])
    if len(keys) == 0:
        return {"voiced": 0, "distinct": 0, "range_semitones": float("nan"), "class_entropy_bits": float("nan")}
    share = pitch_class_histogram(keys)
    share = share[share > 0] / share.sum()
    return {"voiced": len(keys), "distinct": len(torch.unique(keys)),
            "range_semitones": float(keys.max() - keys.min()),
            "class_entropy_bits": float(-(share * share.log2()).sum()) + 0.0}  # fmt: skip


def histogram_kl(reference: torch.Tensor, generated: torch.Tensor, smoothing: float = 1.0) -> float:
    """``KL(P_reference || Q_generated)`` in bits between two histograms of counts over the same bins.

    ``smoothing`` is added to every bin's count of both before normalising (add-one by default), so a
    bin the generator never hit costs a finite amount rather than infinity. In this direction the
    divergence is large when the generator misses what the real data plays, and small when it only
    adds what the real data lacks.

    Args:
        reference, generated: Tensor [bins] of counts >= 0.

    Lesson: lessons/08_model_comparison.ipynb
    """
    if reference.shape != generated.shape or reference.dim() != 1:
        raise ValueError(f"reference {list(reference.shape)} and generated {list(generated.shape)} must be "
                         "histograms [bins] over the same bins.")  # fmt: skip
    if smoothing <= 0 or (reference < 0).any() or (generated < 0).any():
        raise ValueError("counts must be >= 0 and smoothing > 0 (otherwise an empty bin makes the KL infinite).")
    p = (reference.double() + smoothing) / (reference.double() + smoothing).sum()
    q = (generated.double() + smoothing) / (generated.double() + smoothing).sum()
    return float((p * (p / q).log2()).sum())


def pitch_accuracy(midi: torch.Tensor, requested: torch.Tensor) -> float:
    """How often a generator plays the MIDI key it was asked for: the share of notes whose CREPE pitch
    rounds to ``requested`` (an unvoiced note counts as wrong; an octave error is wrong).

    Lesson: lessons/08_model_comparison.ipynb
    """
    if midi.shape != requested.shape or midi.dim() != 1 or len(midi) == 0:
        raise ValueError(f"midi {list(midi.shape)} and requested {list(requested.shape)} must be [n >= 1] alike.")
    return float((torch.round(midi) == requested.to(midi.dtype)).float().mean())


def _check_embeddings(a: torch.Tensor, b: torch.Tensor, minimum: int) -> None:
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or len(x) < minimum:
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a Tensor [n >= {minimum}, dims] of embeddings, got {shape}.")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a has {a.shape[1]} dimensions but b has {b.shape[1]}: embed both the same way.")


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((m + m.T) / 2)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of embeddings (FID, FAD).

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)``, with sample means and covariances
    (divisor n - 1), in float64. The middle square root is taken of a symmetric matrix by its
    eigenvalues, which equals the ``sqrtm(S_a S_b)`` of the usual formula without its complex round-off.
    0 for identical sets. Its unit is the embedding's squared unit, so a value is only judged against
    another on the same embedding (the real data against itself, say). Biased upwards at small n:
    two samples of one distribution score above 0, by more the fewer clips there are.

    Args:
        a, b: Tensor [n, d] and [m, d], n, m >= 2.

    Lesson: lessons/08_model_comparison.ipynb
    """
    _check_embeddings(a, b, 2)
    x, y = a.double().numpy(), b.double().numpy()
    cov_a, cov_b = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    root_a = _sqrt_psd(cov_a)
    middle = _sqrt_psd(root_a @ cov_b @ root_a)
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(middle))


def kernel_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The unbiased squared MMD between two sets of embeddings with the cubic kernel ``(x.y / d + 1)^3``.

    The kernel inception/audio distance (KID, Bińkowski et al. 2018): its expected value is exactly 0
    when both sets come from one distribution, whatever their sizes, so it can dip below 0 by chance;
    unlike :func:`frechet_distance` it has no small-sample bias.

    Args:
        a, b: Tensor [n, d] and [m, d], n, m >= 2.

    Lesson: lessons/08_model_comparison.ipynb
    """
    _check_embeddings(a, b, 2)
    x, y, d = a.double(), b.double(), a.shape[1]
    k_xx, k_yy, k_xy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    n, m = len(x), len(y)
    within = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1)) + (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def mfcc_frames(clips: torch.Tensor, sr: int, n_mfcc: int = 13) -> torch.Tensor:
    """Every frame's first ``n_mfcc`` MFCCs (librosa defaults: 2048-sample window, hop 512, 128 mels), all
    clips stacked: the embedding source 001 used for its Fréchet distance.

    Returns:
        Tensor [n * frames, n_mfcc]. Coefficient 0 is the frame's log energy, in dB-like units, so it
        dominates any distance: its spread over a set of notes is hundreds.

    Lesson: lessons/08_model_comparison.ipynb
    """
    import librosa

    _check_clips(clips)
    # one clip at a time: librosa's dB floor (80 dB below the loudest bin) would otherwise be set by the batch
    mfcc = [librosa.feature.mfcc(y=clip[0].double().numpy(), sr=sr, n_mfcc=n_mfcc).T for clip in clips]
    return torch.from_numpy(np.concatenate(mfcc)).float()


def different_bins(
    reference: torch.Tensor, generated: torch.Tensor, bins: int = 10, alpha: float = 0.05, seed: int = 0
) -> dict:
    """The number of statistically different bins (NDB, Richardson and Weiss 2018).

    The reference embeddings are standardised and cut into ``bins`` cells by k-means; every generated
    embedding falls in its nearest cell. For each cell a two-proportion z-test asks whether the share of
    generated points differs from the share of reference points at level ``alpha``. A generator that
    covers the data scores near ``alpha * bins``; one that plays the same sound every time fills one
    cell and empties the rest, so most cells differ.

    Args:
        reference, generated: Tensor [n, d] and [m, d] of embeddings (n >= bins).

    Returns:
        ``{"different": cells that differ, "bins": bins, "reference_share": Tensor [bins],
        "generated_share": Tensor [bins]}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    from scipy.stats import norm
    from sklearn.cluster import KMeans

    _check_embeddings(reference, generated, 2)
    if len(reference) < bins:
        raise ValueError(f"reference has {len(reference)} embeddings, fewer than bins={bins}: use fewer bins.")
    mean, std = reference.double().mean(0), reference.double().std(0).clamp_min(1e-12)
    x, y = ((reference.double() - mean) / std).numpy(), ((generated.double() - mean) / std).numpy()
    kmeans = KMeans(n_clusters=bins, n_init=10, random_state=seed).fit(x)
    p = np.bincount(kmeans.labels_, minlength=bins) / len(x)
    q = np.bincount(kmeans.predict(y), minlength=bins) / len(y)
    pooled = (p * len(x) + q * len(y)) / (len(x) + len(y))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(x) + 1 / len(y))).clip(min=1e-12)
    different = np.abs(p - q) / se > norm.ppf(1 - alpha / 2)
    return {"different": int(different.sum()), "bins": bins,
            "reference_share": torch.from_numpy(p).float(), "generated_share": torch.from_numpy(q).float()}  # fmt: skip
