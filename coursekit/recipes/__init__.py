"""The recipes that rebuild every shipped checkpoint, one module per lesson.

``python -m coursekit train --list`` lists them; ``python -m coursekit train NAME`` runs one into
the student's own runs folder, ``... --ship`` (instructors) into ``checkpoints/`` and its registry.
Importing this package registers every recipe; :mod:`coursekit.recipes.registry` holds the registry,
:func:`~coursekit.recipes.registry.run_recipe` and the lessons' :func:`~coursekit.recipes.registry.load_or_train`.

Lesson: lessons/02_vae_mnist.ipynb
"""

from coursekit.recipes import (
    adversarial,
    latent_diffusion,
    latent_vae,
    mnist_classifier,
    mnist_vae,
    model_comparison,
    pianoroll_hands,
    pianoroll_vae,
    raw_audio,
    spectrogram_audio,
    spectrogram_vae,
    vq_waveform,
    waveform_vae,
)
from coursekit.recipes.registry import RECIPES, load_or_train, register_recipe, run_path, run_recipe

__all__ = ["RECIPES", "adversarial", "latent_diffusion", "latent_vae", "load_or_train", "mnist_classifier", "mnist_vae",
           "model_comparison", "pianoroll_hands", "pianoroll_vae", "raw_audio", "register_recipe", "run_path",
           "run_recipe", "spectrogram_audio", "spectrogram_vae", "vq_waveform", "waveform_vae"]
