"""Play notes and MIDI through a General MIDI soundfont of recorded samples.

The soundfont is ``TimGM6mb.sf2`` (6 MB, 128 instruments and a drum kit), which ships inside
the ``pretty_midi`` package; ``tinysoundfont`` plays it. Everything returned is mono float32
numpy ``[samples]`` at the synth's sample rate, at the soundfont's own level (a single note at
velocity 100 peaks around 0.2-0.3); callers normalise.

Example:
    >>> synth = SoundfontSynth(sr=16000)
    >>> x = synth.render_note(program=24, pitch=60, velocity=100)   # a nylon-guitar middle C, 4 s

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

DRUM_CHANNEL = 9  # General MIDI plays drums on channel 10 (9 counting from 0), bank 128
DRUM_BANK = 128


def soundfont_path() -> Path:
    """The path of ``TimGM6mb.sf2`` inside the installed pretty_midi package.

    Raises:
        FileNotFoundError: when pretty_midi or its soundfont is missing, saying how to install it.
    """
    spec = importlib.util.find_spec("pretty_midi")
    path = Path(next(iter(spec.submodule_search_locations))) / "TimGM6mb.sf2" if spec else None
    if path is None or not path.exists():
        raise FileNotFoundError(
            "the General MIDI soundfont TimGM6mb.sf2 ships inside the pretty_midi package, which is "
            "missing or incomplete here: run `make lab` (or `pip install pretty_midi==0.2.11.post0`)."
        )
    return path


@dataclass(frozen=True)
class NoteEvent:
    """One note to play. Times in seconds; ``program`` is the 0-based GM program (ignored for drums)."""

    start: float
    end: float
    pitch: int  # MIDI key 0-127 (for drums: which drum, e.g. 36 kick, 42 closed hat)
    velocity: int  # 1-127
    program: int = 0
    drum: bool = False


def _require_tinysoundfont():
    try:
        import tinysoundfont
    except ImportError as err:
        raise ImportError(
            "tinysoundfont is not installed: run `make lab`, or "
            "`pip install --no-deps tinysoundfont==0.3.7` (--no-deps skips pyaudio, which is not needed)."
        ) from err
    return tinysoundfont


class SoundfontSynth:
    """A General MIDI synthesiser at a fixed sample rate, rendering to mono float32 arrays.

    Args:
        sr: output sample rate in Hz.
        gain_db: global gain of the synth in dB (0 is the soundfont's own level).
    """

    def __init__(self, sr: int = 16000, gain_db: float = 0.0):
        if not isinstance(sr, int) or sr < 3000:
            raise ValueError(f"sr={sr}: use a whole number of Hz of at least 3000, e.g. 16000.")
        tsf = _require_tinysoundfont()
        self.sr = sr
        self._synth = tsf.Synth(gain=gain_db, samplerate=sr)
        self._sfid = self._synth.sfload(str(soundfont_path()))

    def preset_name(self, program: int, drum: bool = False) -> str:
        """The soundfont's name for a GM program (0-127) or, with ``drum``, for the drum kit."""
        name = self._synth.sfpreset_name(self._sfid, DRUM_BANK if drum else 0, 0 if drum else program)
        if name is None:
            raise ValueError(f"the soundfont has no preset for program {program} (drum={drum}).")
        return name

    def _generate_into(self, stereo: np.ndarray, start: int, stop: int) -> None:
        """Render samples ``start:stop`` into ``stereo``, a C-contiguous float32 ``[samples, 2]`` array."""
        if stop > start:
            self._synth.generate(stop - start, buffer=memoryview(stereo[start:stop]).cast("B"))

    def _select(self, channel: int, program: int, drum: bool) -> None:
        if drum:
            self._synth.program_select(channel, self._sfid, DRUM_BANK, 0, is_drums=True)
        else:
            self._synth.program_select(channel, self._sfid, 0, program)

    def render_note(
        self, program: int, pitch: int, velocity: int, hold: float = 3.0, duration: float = 4.0, drum: bool = False
    ) -> np.ndarray:
        """One note held for ``hold`` seconds, then released, ``duration`` seconds in all.

        Returns:
            float32 ``[round(duration * sr)]``.
        """
        _check_note(pitch, velocity, program)
        if not 0 < hold <= duration:
            raise ValueError(f"hold={hold} s must be positive and at most duration={duration} s.")
        event = NoteEvent(0.0, hold, pitch, velocity, program, drum)
        return self.render_events([event], duration)

    def render_events(self, events: list[NoteEvent], duration: float) -> np.ndarray:
        """Play a list of notes (any order, overlapping, up to 15 programs plus drums).

        Returns:
            float32 ``[round(duration * sr)]``; notes still sounding at the end are cut.
        """
        channels = self._assign_channels(events)
        changes = []  # (sample, 0 = off before 1 = on, channel, pitch, velocity)
        for e in events:
            _check_note(e.pitch, e.velocity, e.program)
            channel = channels[(e.program, e.drum)]
            changes.append((round(e.start * self.sr), 1, channel, e.pitch, e.velocity))
            changes.append((max(round(e.end * self.sr), round(e.start * self.sr) + 1), 0, channel, e.pitch, 0))
        changes.sort()
        stereo = np.zeros((round(duration * self.sr), 2), dtype=np.float32)  # rendered in place between events
        cursor = 0
        for sample, is_on, channel, pitch, velocity in changes:
            sample = min(sample, len(stereo))
            self._generate_into(stereo, cursor, sample)
            cursor = sample
            if is_on:
                self._synth.noteon(channel, pitch, velocity)
            else:
                self._synth.noteoff(channel, pitch)
        self._generate_into(stereo, cursor, len(stereo))
        self._synth.sounds_off()
        self._synth.generate(round(0.02 * self.sr))  # the quick release takes ~12 ms: let it end (output discarded)
        return _to_mono(stereo)

    def _assign_channels(self, events: list[NoteEvent]) -> dict[tuple[int, bool], int]:
        melodic = sorted({(e.program, False) for e in events if not e.drum})
        free = [c for c in range(16) if c != DRUM_CHANNEL]
        if len(melodic) > len(free):
            raise ValueError(
                f"{len(melodic)} programs play at once, but General MIDI has {len(free)} melodic channels."
            )
        channels = dict(zip(melodic, free, strict=False))
        if any(e.drum for e in events):
            channels.update({(e.program, True): DRUM_CHANNEL for e in events if e.drum})
        for (program, drum), channel in channels.items():
            self._select(channel, program, drum)
        return channels

    def render_midi(self, midi: pretty_midi.PrettyMIDI, duration: float | None = None) -> np.ndarray:
        """Play every instrument of a ``pretty_midi.PrettyMIDI`` (drums on the GM drum kit).

        Args:
            duration: seconds to render; default the end of the last note plus 1 s of release.
        """
        events = [
            NoteEvent(n.start, n.end, n.pitch, n.velocity, inst.program, inst.is_drum)
            for inst in midi.instruments
            for n in inst.notes
        ]
        if duration is None:
            duration = max((e.end for e in events), default=0.0) + 1.0
        return self.render_events(events, duration)


def _to_mono(stereo: np.ndarray) -> np.ndarray:
    """The mean of the two channels of float32 ``[samples, 2]``, as float32 ``[samples]``.

    ``(left + right) * 0.5`` equals ``stereo.mean(axis=1)`` bit for bit (halving is exact) and is
    several times faster than numpy's reduction over an axis of length 2.
    """
    mono = stereo[:, 0] + stereo[:, 1]
    mono *= np.float32(0.5)
    return mono


def _check_note(pitch: int, velocity: int, program: int) -> None:
    if not 0 <= pitch <= 127:
        raise ValueError(f"pitch={pitch} is not a MIDI key: use 0-127 (60 is middle C).")
    if not 1 <= velocity <= 127:
        raise ValueError(f"velocity={velocity} is out of range: use 1-127.")
    if not 0 <= program <= 127:
        raise ValueError(f"program={program} is not a General MIDI program: use 0-127 (0-based).")
