"""Lesson 08's sets of notes and their judge: what the models are asked for, how their images become
audio, and every figure of the lesson's table for a set of clips against the real test notes.

The models and their recipes are in :mod:`coursekit.recipes.model_comparison`; the measurements
themselves in :mod:`coursekit.evaluation`.

Lesson: lessons/08_model_comparison.ipynb
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit import audio, evaluation
from coursekit.data.nsynth import FAMILIES, SR
from coursekit.descriptors import loud_flatness
from coursekit.models.family import FamilyClassifier
from coursekit.recipes.model_comparison import FEATURES, note_clips


def features_to_audio(features: torch.Tensor, n_iter: int = 32) -> torch.Tensor:
    """Audio ``[n, 1, 16000]`` (peak 0.9) from :data:`FEATURES` images ``[n, 1, 256, frames]``, by Griffin-Lim.

    Images shorter than 64 frames are padded with silence.

    Lesson: lessons/08_model_comparison.ipynb
    """
    features = torch.nn.functional.pad(features.detach(), (0, FEATURES.n_frames - features.shape[-1]))
    return audio.peak_normalize(FEATURES.decode(features, n_iter=n_iter), 0.9)


def chunked_features_to_audio(features: torch.Tensor, chunk: int = 8, n_iter: int = 32) -> torch.Tensor:
    """Source 001's first way back to audio: invert every ``chunk`` frames on their own and join the pieces.

    Each piece gets its own Griffin-Lim phase, so nothing lines the phases up where pieces meet.
    Returns ``[n, 1, frames * hop]`` (peak 0.9).

    Lesson: lessons/08_model_comparison.ipynb
    """
    frames = features.shape[-1]
    mag = FEATURES.to_magnitude(torch.nn.functional.pad(features.detach(), (0, FEATURES.n_frames - frames)))
    pieces = [audio.griffin_lim(mag[..., first : min(first + chunk, frames)], FEATURES.n_fft, FEATURES.hop_length,
                                n_iter=n_iter, length=(min(first + chunk, frames) - first) * FEATURES.hop_length)
              for first in range(0, frames, chunk)]  # fmt: skip
    return audio.peak_normalize(torch.cat(pieces, dim=-1), 0.9)


def requested_notes(per_family: int, size: str | int = "mini", seed: int = 0) -> dict[str, torch.Tensor]:
    """``per_family`` test notes of each family, drawn at random: what conditional models are asked for.

    Returns:
        :func:`note_clips` of the test split restricted to the chosen notes (1 s), with ``"index"``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    test = note_clips("test", 1.0, size)
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for family in range(len(FAMILIES)):
        rows = (test["family"] == family).nonzero()[:, 0]
        chosen += rows[torch.randperm(len(rows), generator=g)[:per_family]].tolist()
    index = torch.tensor(sorted(chosen))
    return {key: value[index] for key, value in test.items()} | {"index": index}


def judge_set(
    clips: torch.Tensor, reference: dict[str, torch.Tensor], classifier: FamilyClassifier,
    requested_pitch: torch.Tensor | None = None, requested_family: torch.Tensor | None = None, bins: int = 10,
) -> dict[str, float]:  # fmt: skip
    """Every figure of lesson 08's table for a set of 1-s clips ``[n, 1, samples]`` at 16 kHz.

    Args:
        reference: the real set it is judged against: ``{"audio", "midi" (note_pitches of it),
            "embedding" (classifier.embeddings of it), "mfcc" (mfcc_frames of it)}``.
        classifier: the family classifier (its embedding and its predictions).
        requested_pitch, requested_family: what a conditional model was asked for, if anything.

    Returns:
        ``{"voiced", "distinct_keys", "range_semitones", "class_entropy_bits", "pitch_class_kl_bits"
        (KL(reference || set)), "distinct_hz", "range_hz" (source 001's frame counts), "pitch_accuracy",
        "family_accuracy" (nan when nothing was asked), "frechet", "kernel" (classifier embedding),
        "frechet_mfcc" (source 001's embedding), "different_bins" (of ``bins``), "flatness" (mean
        :func:`coursekit.descriptors.loud_flatness`: 1 white noise, near 0 a pure tone)}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    frames = evaluation.voiced_frames(clips, SR)  # one CREPE pass for the note pitches and the Hz counts
    midi = evaluation.frame_medians(frames)
    stats = evaluation.pitch_statistics(midi)
    embedding = classifier.embeddings(clips)
    nan = float("nan")
    row = {
        "voiced": stats["voiced"] / len(clips), "distinct_keys": stats["distinct"],
        "range_semitones": stats["range_semitones"], "class_entropy_bits": stats["class_entropy_bits"],
        "pitch_class_kl_bits": evaluation.histogram_kl(evaluation.pitch_class_histogram(reference["midi"]),
                                                       evaluation.pitch_class_histogram(midi)),
        **evaluation.hz_counts(evaluation.midi_to_hz(torch.cat(frames))),
        "pitch_accuracy": nan if requested_pitch is None else evaluation.pitch_accuracy(midi, requested_pitch),
        "family_accuracy": nan if requested_family is None else float(
            (classifier.predict(clips) == requested_family).float().mean()),
        "frechet": evaluation.frechet_distance(reference["embedding"], embedding),
        "kernel": evaluation.kernel_distance(reference["embedding"], embedding),
        "frechet_mfcc": evaluation.frechet_distance(reference["mfcc"], evaluation.mfcc_frames(clips, SR)),
        "different_bins": evaluation.different_bins(reference["embedding"], embedding, bins=bins)["different"],
        "flatness": float(np.mean([loud_flatness(clip[0], SR) for clip in clips])),
    }  # fmt: skip
    return row


def reference_set(
    clips: torch.Tensor, classifier: FamilyClassifier, midi: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """What :func:`judge_set` compares with: the clips, their CREPE pitches, embeddings and MFCC frames.

    Pass ``midi`` (their :func:`coursekit.evaluation.note_pitches`) when already computed: CREPE is the
    slow part.

    Lesson: lessons/08_model_comparison.ipynb
    """
    midi = evaluation.note_pitches(clips, SR) if midi is None else midi
    return {"audio": clips, "midi": midi, "embedding": classifier.embeddings(clips),
            "mfcc": evaluation.mfcc_frames(clips, SR)}  # fmt: skip
