"""Measurements, tensors in and numbers out: how close two sounds are (spectral convergence, SNR),
how many latent units a VAE uses, F1 of 0/1 piano rolls against a baseline, and the pitch of a
note by CREPE.

Lesson: lessons/01_audio_representations.ipynb
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from coursekit import audio
from coursekit.audio import check_signal

CREPE_SR = 16000  # the rate CREPE hears, Hz


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


# ----------------------------------------------------------------------------- the referee of lesson 05
REFEREE_FFTS = (1024, 512, 256, 128)  # the auraloss referee: windows, hops a quarter of each


def referee_distance() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The independent judge of waveform reconstructions: ``auraloss.freq.MultiResolutionSTFTLoss``
    with windows 1024, 512, 256 and 128 samples (hops a quarter), called as ``referee(y, x)`` on
    ``[batch, 1, samples]`` and returning a Tensor [] (lower is closer).

    It is a different implementation, and a different sum (spectral convergence plus log
    magnitude), from the loss the models train on, so a model cannot win by fitting the judge's
    quirks.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    import auraloss  # imported here: only lesson 05 and its benchmarks need it

    sizes = list(REFEREE_FFTS)
    return auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes],
                                                 win_lengths=sizes)  # fmt: skip


@torch.no_grad()
def random_other_ratio(
    reconstructions: torch.Tensor,
    clips: torch.Tensor,
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
) -> float:
    """How close reconstructions are, as a fraction of how far apart two unrelated clips are.

    ``mean_i d(recon_i, clip_i) / mean_i d(clip_j(i), clip_i)``, where ``j(i)`` is a random other
    clip (a permutation fixed by ``seed``, never ``i`` itself) and ``d`` is ``distance``
    (default :func:`referee_distance`), each pair measured on its own. 0 is a perfect copy; 1 is
    as far as a random other clip of the same set; silence scores above 1. The ratio does not
    depend on the loudness or kind of the material, so notes and loops can be compared.

    Args:
        reconstructions, clips: Tensor [n, 1, samples], n >= 2, matched by index.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    if reconstructions.shape != clips.shape or clips.dim() != 3 or len(clips) < 2:
        raise ValueError(
            f"reconstructions {list(reconstructions.shape)} and clips {list(clips.shape)} must have one shape "
            "[n >= 2, 1, samples]."
        )
    distance = referee_distance() if distance is None else distance
    n = len(clips)
    others = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    others = torch.where(others == torch.arange(n), (others + 1) % n, others)
    to_recon = torch.stack([distance(reconstructions[i : i + 1], clips[i : i + 1]) for i in range(n)]).mean()
    to_other = torch.stack([distance(clips[j : j + 1], clips[i : i + 1]) for i, j in enumerate(others.tolist())])
    return float(to_recon / to_other.mean())


def roughness(trajectory: torch.Tensor) -> float:
    """Mean squared difference between neighbouring frames, ``[..., frames]`` -> float (0 for a constant).

    Lesson: lessons/06_latent_vae.ipynb
    """
    return float((trajectory[..., 1:] - trajectory[..., :-1]).pow(2).mean())


# ----------------------------------------------------------------------------- F1 of 0/1 rolls (lesson 07)
def f1_counts(predicted: torch.Tensor, target: torch.Tensor) -> dict[str, int]:
    """True positives, false positives and false negatives of 0/1 rolls of the same shape.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if predicted.shape != target.shape:
        raise ValueError(f"predicted {list(predicted.shape)} and target {list(target.shape)} must have one shape.")
    p, t = predicted.bool(), target.bool()
    return {"tp": int((p & t).sum()), "fp": int((p & ~t).sum()), "fn": int((~p & t).sum())}


def f1_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from counts; 0.0 where a ratio has nothing to count (e.g. an all-zero guess).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def frequency_baseline(train_rolls: torch.Tensor, rolls: torch.Tensor) -> dict[str, float]:
    """F1 of a roll that holds each column on when it sounds often in training, the same at every step.

    The column frequencies (fraction of training steps a column sounds) are thresholded at the
    value that gives the best F1 on the training rolls; the same guess is then scored on ``rolls``.
    An all-zero guess scores 0.

    Args:
        train_rolls: Tensor [n, steps, 102], the training windows.
        rolls: Tensor [m, steps, 102], the windows to score the guess on.

    Returns:
        ``{"precision", "recall", "f1", "threshold"}``.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    frequency = train_rolls.mean(dim=(0, 1))  # [102]

    def scores(guess_columns: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        guess = guess_columns.expand_as(target)
        return f1_scores(**f1_counts(guess, target))

    candidates = frequency.unique()
    best = max(candidates.tolist(), key=lambda t: scores(frequency >= t, train_rolls)["f1"])
    return scores(frequency >= best, rolls) | {"threshold": best}


HAND_COLUMNS = {"right": slice(0, 51), "left": slice(51, 102)}  # columns of each hand in a two-hand roll


def f1_by_hand(predicted: torch.Tensor, target: torch.Tensor) -> dict[str, dict[str, float]]:
    """Precision, recall and F1 of each hand of two-hand rolls ``[..., steps, 102]``, counts pooled.

    Returns:
        ``{"right": {...}, "left": {...}}``, each as :func:`f1_scores`. A hand with no notes in
        either roll scores 0.

    Example:
        >>> f1_by_hand(model_rolls, test_rolls)["left"]["f1"]

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if predicted.shape[-1] != 102:
        raise ValueError(f"rolls of shape {list(predicted.shape)}: f1_by_hand needs two-hand rolls, 102 columns last.")
    return {
        hand: f1_scores(**f1_counts(predicted[..., cols], target[..., cols])) for hand, cols in HAND_COLUMNS.items()
    }


def note_onsets(roll: torch.Tensor) -> torch.Tensor:
    """The note starts of 0/1 rolls ``[..., steps, keys]``: 1 where a cell is on and the step before is off.

    A note already sounding at step 0 starts there. A key struck again without a gap is one note
    in a roll, so it has one start.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if roll.dim() < 2:
        raise ValueError(f"roll of shape {list(roll.shape)}: note_onsets needs [..., steps, keys].")
    on = roll.bool()
    before = torch.zeros_like(on)
    before[..., 1:, :] = on[..., :-1, :]
    return (on & ~before).to(roll.dtype)


def onset_f1(predicted: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Precision, recall and F1 of note starts (:func:`note_onsets`): each note counts once, at its start step.

    Cell F1 counts a note held for eight steps eight times; this one asks whether each note
    starts on the right key at the right sixteenth, so it measures rhythm.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    return f1_scores(**f1_counts(note_onsets(predicted), note_onsets(target)))


def keyset_baseline(rolls: torch.Tensor) -> dict[str, float]:
    """Cell F1 of holding, at every step of each window, every key that the window uses somewhere.

    An oracle that knows which keys each window uses and nothing about when: a model whose
    reconstructions do not beat it has learned no timing inside the window.

    Args:
        rolls: Tensor [n, steps, keys] of 0/1 windows.

    Returns:
        ``{"precision", "recall", "f1"}`` (recall is 1 by construction) and ``"onset_f1"``
        (:func:`onset_f1`: every guessed note starts at step 0).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if rolls.dim() != 3:
        raise ValueError(f"rolls of shape {list(rolls.shape)}: keyset_baseline needs windows [n, steps, keys].")
    guess = rolls.amax(dim=1, keepdim=True).expand_as(rolls)
    return f1_scores(**f1_counts(guess, rolls)) | {"onset_f1": onset_f1(guess, rolls)["f1"]}


# ----------------------------------------------------------------------------- pitch (lesson 00)
def pitch_error_cents(x: torch.Tensor | np.ndarray, sr: int, pitch: int, threshold: float = 0.5) -> float:
    """How far the fundamental of a note lies from MIDI ``pitch``, in cents (CREPE, torchcrepe's tiny model).

    CREPE rates 360 pitch bins 20 cents apart every 20 ms; a frame is voiced when its best bin's
    confidence exceeds ``threshold``, and its pitch is the confidence-weighted mean of the bins
    around the best one. The median over voiced frames is compared with the key's frequency.
    About 0.3 s per 4 s note on one CPU core.

    Args:
        x: a note, Tensor or array ``[samples]`` or ``[1, samples]``.
        sr: its sample rate in Hz.
        pitch: the MIDI key it should sound (69 is A4, 440 Hz).

    Returns:
        Cents, positive when sharp: about +1200 an octave too high, within +-50 for a good note.

    Raises:
        ValueError: when no frame is voiced (silence, noise, a fundamental below 32 Hz, or a note
            too short or too inharmonic for CREPE).

    Example:
        >>> pitch_error_cents(coursekit.synth.sine(440.0, 1.0, 16000), 16000, 69)   # about 0

    Lesson: lessons/00_tour.ipynb
    """
    mono = audio.to_mono(torch.as_tensor(x, dtype=torch.float32))
    cents, confidence = crepe_cents(audio.resample(mono, sr, CREPE_SR))
    voiced = confidence > threshold
    if not voiced.any():
        raise ValueError(f"no frame of x is voiced (confidence > {threshold}): it is silent, noisy or below 32 Hz.")
    return float(cents[voiced].median()) - 1200 * math.log2(440.0 * 2 ** ((pitch - 69) / 12) / 10.0)


def pitch_errors(originals: torch.Tensor, pitches: list[int], sr: int) -> list[float | None]:
    """:func:`pitch_error_cents` of each note against its MIDI key, None where no frame is voiced.

    Compute it once and pass it to :func:`pitch_kept` as ``original_cents`` when several sets of
    reconstructions of the same notes are judged: CREPE is the slow part.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    errors: list[float | None] = []
    for original, pitch in zip(originals, pitches, strict=True):
        try:
            errors.append(pitch_error_cents(original, sr, int(pitch)))
        except ValueError:
            errors.append(None)
    return errors


def pitch_kept(
    originals: torch.Tensor, reconstructions: torch.Tensor, pitches: list[int], sr: int, tolerance: float = 50.0,
    original_cents: list[float | None] | None = None,
) -> dict[str, float | int]:  # fmt: skip
    """How often a reconstruction keeps the pitch of its original, by CREPE (:func:`pitch_error_cents`).

    A note counts when CREPE hears its original as pitched: some frame voiced, and the median within
    ``tolerance`` cents of the MIDI key it was played at (a mallet's or a drum-like note's CREPE
    pitch is often elsewhere, and then nothing can be said). Its reconstruction keeps the pitch when
    CREPE's median for it lies within ``tolerance`` cents of the original's (a silent or unvoiced
    reconstruction does not).

    Args:
        originals, reconstructions: Tensor [n, 1, samples], matched by index.
        pitches: the n MIDI keys.
        sr: sample rate in Hz.
        original_cents: the originals' :func:`pitch_errors`, when already computed.

    Returns:
        ``{"pitched": notes that count, "kept": of those, how many kept their pitch, "fraction":
        kept / pitched (nan when none counts)}``.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    if originals.shape != reconstructions.shape or len(pitches) != len(originals):
        raise ValueError(
            f"originals {list(originals.shape)}, reconstructions {list(reconstructions.shape)} and {len(pitches)} "
            "pitches must describe the same notes."
        )
    if original_cents is None:
        original_cents = pitch_errors(originals, pitches, sr)
    if len(original_cents) != len(originals):
        raise ValueError(f"original_cents has {len(original_cents)} values for {len(originals)} notes.")
    pitched = kept = 0
    for reconstruction, pitch, reference in zip(reconstructions, pitches, original_cents, strict=True):
        if reference is None or abs(reference) > tolerance:
            continue
        pitched += 1
        try:
            kept += abs(pitch_error_cents(reconstruction, sr, int(pitch)) - reference) <= tolerance
        except ValueError:
            pass
    return {"pitched": pitched, "kept": int(kept), "fraction": kept / pitched if pitched else float("nan")}


def crepe_cents(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CREPE's pitch (cents above 10 Hz) and confidence for each 20 ms frame of ``x`` [1, samples] at 16 kHz.

    Decoded here rather than by ``torchcrepe.predict``: its Viterbi decoder sticks at the lowest bin
    on some whole notes, and its dithering draws from NumPy's global generator. CREPE is the slow
    part of every pitch measurement (about 0.25 s per second of audio on one core), so it runs on
    every core the process may use (:func:`every_core`), whatever the caller's thread count.
    """
    import torchcrepe  # imported here: it takes a second to load, and most users of this module never need it

    # not inference_mode: the model torchcrepe caches must stay usable elsewhere
    with torch.no_grad(), every_core():
        frames = torch.cat(list(torchcrepe.preprocess(x.detach().cpu(), CREPE_SR, hop_length=CREPE_SR // 50)))
        probabilities = torchcrepe.infer(frames, model="tiny")  # [frames, 360]
    confidence, best = probabilities.max(dim=1)
    bins = torch.arange(probabilities.shape[1])
    weights = probabilities * ((bins - best[:, None]).abs() <= 4)  # the best bin and 4 either side
    bin_cents = torchcrepe.CENTS_PER_BIN * bins + 1997.3794084376191  # torchcrepe's bin centres
    return (weights * bin_cents).sum(dim=1) / weights.sum(dim=1), confidence


@contextmanager
def every_core() -> Iterator[int]:
    """Let torch use every core this process may run on inside the ``with`` block; yields that count.

    The lessons and recipes run torch on one thread (small models train faster so, and the arithmetic
    is the same on every machine); CREPE's convolutions are large enough to gain from all cores. The
    caller's thread count is restored on exit, even after an exception.

    Lesson: lessons/08_model_comparison.ipynb
    """
    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(cores)
    try:
        yield cores
    finally:
        torch.set_num_threads(before)
