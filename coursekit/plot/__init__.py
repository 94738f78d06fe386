"""Plots the lessons share: image grids, loss curves, latent spaces, waveforms, spectrograms, piano rolls.

One module per kind: :mod:`~coursekit.plot.images` (image grids, loss curves),
:mod:`~coursekit.plot.latent` (latent spaces), :mod:`~coursekit.plot.sound` (waveforms,
spectrograms, piano rolls); all of them are importable from here.

Every function draws into ``ax`` when given one and otherwise makes a new figure with
``matplotlib.pyplot`` (so a notebook shows it when the cell ends); it returns the ``Axes`` it drew
on (``ax.figure`` is the figure), never calls ``plt.show()`` and never closes a figure. Four plots
in one figure::

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), layout="constrained")
    plot.waveform(x, sr, ax=axes[0, 0]); plot.spectrogram(x, sr, ax=axes[0, 1])

Inputs may be torch tensors (on any device, with or without gradients) or numpy arrays.

Lesson: lessons/02_vae_mnist.ipynb
"""

from coursekit.plot.common import ArrayLike
from coursekit.plot.images import check_images, image_grid, loss_curves
from coursekit.plot.latent import latent_manifold, latent_scatter, manifold_values, pca_2d
from coursekit.plot.sound import pianoroll, spectrogram, waveform

__all__ = ["ArrayLike", "check_images", "image_grid", "latent_manifold", "latent_scatter", "loss_curves",
           "manifold_values", "pca_2d", "pianoroll", "spectrogram", "waveform"]
