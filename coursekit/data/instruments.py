"""The 79 General MIDI programs of NSynth-mini: each one's NSynth family and source, its key range,
and the keys and octaves that measured wrong in the soundfont (and how each was found).

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

from dataclasses import dataclass

# Pitch range (MIDI, inclusive) rendered per family, inside NSynth's 24-84 span.
FAMILY_PITCHES = {
    "bass": (24, 60), "brass": (36, 84), "flute": (48, 84), "guitar": (40, 84), "keyboard": (36, 84),
    "mallet": (53, 84), "organ": (36, 79), "reed": (48, 79), "string": (40, 84), "synth_lead": (36, 84),
    "vocal": (53, 79),
}  # fmt: skip

# GM programs (0-based) of each family and source. Acoustic: recorded acoustic instruments;
# electronic: recorded electric or electronic instruments; synthetic: synthesisers.
# Measured with coursekit.metrics.pitch_error_cents: every 4th key of each family's range, then every key at
# velocities 25, 75 and 127 of the programs that failed (their pitch never changed with velocity), then every key
# of the instruments kept, at velocity 100 (all within 50 cents but reed organ key 37). Left out:
# 16 drawbar organ (its sample zones disagree: 0, +1200 or -1200 cents from key to key), 19 church
# organ (+1200 below key 60, -1200 above), 22 harmonica (+2785 at key 36), 29 overdrive and
# 30 distortion guitar (+1200 to +1900 on low keys), 31 guitar harmonics (+2400), 37 slap bass 2
# (+1200 to +2400 or unvoiced below key 39), 39 synth bass 2 (its filter resonates: raw peak 6.3 at
# key 72), 47 timpani (+690), 78 whistle (-880 at every key), 84 charang (+1900 low, +1200 high),
# 86 fifths saw (two pitches), 104 sitar (-2805 to +2415), and the unpitched 55 orchestra hit.
GM_GROUPS = (
    ("keyboard", "acoustic", (0, 1, 3, 6)),
    ("keyboard", "electronic", (2, 4, 7)),
    ("keyboard", "synthetic", (5,)),  # E.Piano 2 is the FM (DX7) piano
    ("mallet", "acoustic", (8, 9, 10, 11, 12, 13, 15)),
    ("organ", "electronic", (17, 18)),
    ("organ", "acoustic", (20, 21, 23)),
    ("guitar", "acoustic", (24, 25, 105)),  # 105 banjo
    ("guitar", "electronic", (26, 27, 28)),
    ("bass", "acoustic", (32,)),
    ("bass", "electronic", (33, 34, 35, 36)),
    ("bass", "synthetic", (38,)),
    ("string", "acoustic", (40, 41, 42, 43, 44, 45, 46, 48, 49, 110)),  # 110 fiddle
    ("string", "synthetic", (50, 51)),
    ("vocal", "acoustic", (52, 53)),
    ("vocal", "synthetic", (54, 91)),  # 91 is the choir pad
    ("brass", "acoustic", (56, 57, 58, 59, 60, 61)),
    ("brass", "synthetic", (62, 63)),
    ("reed", "acoustic", (64, 65, 66, 67, 68, 69, 70, 71, 109, 111)),  # 109 bagpipe, 111 shanai
    ("flute", "acoustic", (72, 73, 74, 75, 76, 77, 79)),
    ("synth_lead", "synthetic", (80, 81, 82, 83, 85, 87)),
)
# Organs 17 and 18 sound an octave below every key (-1189 to -1210 cents: a 16-foot stop), so they
# are played an octave higher to sound at the labelled pitch.
TRANSPOSE = {17: 12, 18: 12}
# Key ranges narrower than the family's, for programs whose lowest keys measured 19 (3 honky-tonk,
# 21 accordion) or 12 (6 harpsichord) semitones high, or whose keys above 72 measured 41 to 65
# cents flat (21 accordion, 23 bandoneon); and single keys that measured an octave off, or silent
# (65 alto sax at key 64).
KEY_RANGES = {3: (39, 84), 6: (41, 84), 21: (40, 72), 23: (36, 72)}
BAD_KEYS = {(20, 37), (32, 29), (32, 30), (43, 44), (65, 64), (68, 64), (68, 74), (68, 75)}  # (program, key)


@dataclass(frozen=True, order=True)
class Instrument:
    """One NSynth-mini instrument: a GM program labelled with an NSynth family and source."""

    program: int  # 0-based GM program
    family: str  # one of FAMILIES
    source: str  # one of SOURCES

    @property
    def instrument_str(self) -> str:
        """``<family>_<source>_<program:03d>``, e.g. ``guitar_acoustic_024``."""
        return f"{self.family}_{self.source}_{self.program:03d}"

    @property
    def keys(self) -> list[int]:
        """The MIDI keys NSynth-mini may label this instrument's notes with: its key range less BAD_KEYS."""
        low, high = KEY_RANGES.get(self.program, FAMILY_PITCHES[self.family])
        return [k for k in range(low, high + 1) if (self.program, k) not in BAD_KEYS]

    @property
    def sounding_keys(self) -> list[int]:
        """The keys the soundfont is played on for those notes: ``keys`` shifted by TRANSPOSE."""
        return [k + TRANSPOSE.get(self.program, 0) for k in self.keys]


INSTRUMENTS = tuple(sorted(Instrument(p, family, source) for family, source, programs in GM_GROUPS for p in programs))
