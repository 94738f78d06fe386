"""Real datasets that need no network: each one ships inside a Python package or is built from one.

=====================  ==========================================  ===============================
name                   what an item is                             module
=====================  ==========================================  ===============================
``MNIST``              (image [1, 28, 28] in [0, 1], label)        :mod:`coursekit.data.mnist`
``NSynth``             (note [64000] at 16 kHz, metadata dict)     :mod:`coursekit.data.nsynth`
``NSynthMini``         the same, rendered from a GM soundfont      :mod:`coursekit.data.nsynth`
``TechnoLoops``        (loop [samples] at 16 kHz, metadata dict)   :mod:`coursekit.data.loops`
``PianoRolls``         two-hand piano-roll windows                 :mod:`coursekit.data.pianoroll`
``MusicRecordings``    whole rendered pieces (audio, metadata)     :mod:`coursekit.data.music`
``AudioFolder``        the user's own audio files                  :mod:`coursekit.data.folder`
=====================  ==========================================  ===============================

Each class's docstring gives the exact item format. Names load lazily, so ``import coursekit.data``
does not import music21 until a piano-roll or music name is used.

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "MNIST": "mnist",
    "NSynth": "nsynth",
    "NSynthMini": "nsynth",
    "render_nsynth_mini": "nsynth",
    "TechnoLoops": "loops",
    "render_loops": "loops",
    "beat_grid": "loops",
    "PianoRolls": "pianoroll",
    "build_pianorolls": "pianoroll",
    "pianoroll_to_midi": "pianoroll",
    "score_to_pianoroll": "pianoroll",
    "MusicRecordings": "music",
    "render_music": "music",
    "AudioFolder": "folder",
    "SoundfontSynth": "soundfont",
    "NoteEvent": "soundfont",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'coursekit.data' has no attribute {name!r}; it offers {', '.join(__all__)}")
    return getattr(importlib.import_module(f"coursekit.data.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return __all__
