"""coursekit: the shared library of the generative-audio course.

Notebooks in ``lessons/`` import from here what two notebooks would otherwise both write:
``config`` (device, seeds, FAST mode, folders), ``audio`` (I/O and representations),
``synth`` (test signals), ``data`` (the offline datasets), ``models`` (one file per model family),
``losses`` (KL, likelihoods, ELBO), ``train`` (the training loop), ``checkpoints`` (save, load,
shipped weights), ``recipes`` (how each shipped checkpoint is trained), ``metrics`` (distances and
measurements), ``plot`` and ``widgets`` (what notebooks show). Run ``python -m coursekit doctor``
when something looks wrong.
"""

__version__ = "0.1.0"
