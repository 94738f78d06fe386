"""coursekit: the shared library of the generative-audio course.

Notebooks in ``lessons/`` import from here what two notebooks would otherwise both write:
``config`` (device, seeds, FAST mode, folders), ``audio`` (I/O and representations),
``synth`` (test signals), ``metrics`` (distances between sounds). Run
``python -m coursekit doctor`` when something looks wrong.
"""

__version__ = "0.1.0"
