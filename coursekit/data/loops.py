"""Beat-aligned techno loops at 16 kHz rendered through the General MIDI soundfont, with metadata.

Each loop is a whole number of 4/4 bars on a sixteenth-note grid (16 steps a bar): the GM drum
kit (kick on every beat, hats on off-beats or sixteenths, clap or snare on beats 2 and 4), a bass
riff in a minor key and, in some loops, a synth or organ stab. Tempo, patterns, sounds and fills
are drawn from a generator seeded by the loop's ``pattern_seed``, so every loop can be rebuilt
from its metadata. Patterns are strings with one character a step: ``"x...x...x...x..."``.

Seamless repetition: the pattern is rendered several times in a row (enough passes to cover
``TAIL_S`` of release) and the last pass is kept. Its start therefore holds the releases of the
previous pass, cut or choked exactly as they are when the loop repeats (an open hat rings on into
the next bar until a closed hat chokes it), so ``np.tile(x, k)`` sounds like one long performance.

Example:
    >>> loops = TechnoLoops(n_loops=8, bars=1)
    >>> item = loops[0]                     # item["audio"]: Tensor [1, item["n_samples"]]
    >>> grid = beat_grid(item["bpm"], item["bars"])   # grid.times: beats in seconds

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from coursekit import audio, config
from coursekit.data.cache import cached_build
from coursekit.data.soundfont import NoteEvent, SoundfontSynth

SR = 16000  # sample rate of every loop, Hz
STEPS_PER_BEAT = 4  # sixteenth notes
BEATS_PER_BAR = 4  # 4/4 time
STEPS_PER_BAR = STEPS_PER_BEAT * BEATS_PER_BAR
BPM_RANGE = (120.0, 135.0)  # default tempo range, beats per minute
BPM_LIMITS = (60.0, 200.0)  # the tempo range that the patterns are written for
PARTS = ("drums", "bass", "stab")
PEAK = 0.9  # every loop is scaled to this peak
TAIL_S = 2.5  # releases up to this long carry over into the loop's start (an open hat rings ~2 s)
METADATA = "loops.json"

KICK, CLOSED_HAT, OPEN_HAT, SNARE, CLAP = 36, 42, 46, 38, 39  # GM drum keys
BASS_PROGRAMS = (33, 34, 38, 39, 87)  # fingered, picked, synth bass 1 and 2, bass & lead
STAB_PROGRAMS = (16, 17, 62, 80, 81, 90)  # organ 1 and 2, synth brass, square, saw, poly synth
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 12)  # natural minor; a bass digit d plays MINOR_SCALE[d]
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
HAT_BEATS = ("..x.", "..o.", "xxxx", "xxox", "x.x.")  # one beat of hats: x closed, o open
STAB_BARS = ("..x...x...x...x.", "x.....x.....x...", "...x..x.....x...", "x..x..x..x..x...", "......x.......x.")
VELOCITY = {KICK: 120, SNARE: 105, CLAP: 105, CLOSED_HAT: 65, OPEN_HAT: 85, "bass": 80, "stab": 75}
ACCENT = 90  # velocity of closed hats on the off-beat


@dataclass(frozen=True)
class LoopSpec:
    """Everything that defines one loop; ``asdict(spec)`` is its metadata (all ints, floats, strs).

    Patterns have ``bars * 16`` characters, one a sixteenth step, ``.`` for a rest. ``kick`` and
    ``clap``: ``x`` hits (``clap_note`` is 39 clap or 38 snare). ``hat``: ``x`` closed, ``o`` open.
    ``bass``: a digit d plays ``root + MINOR_SCALE[d]`` (7 is the octave). ``stab``: ``x`` plays a
    minor chord (``stab_chord`` "m" or "m7") two octaves above ``root``. A part that does not play
    is all rests, its program (or ``clap_note``) -1 and ``stab_chord`` ""; ``parts`` names those
    that play, e.g. ``"drums+bass"``.
    """

    pattern_seed: int
    bpm: float
    bars: int
    n_samples: int  # round(bars * 4 * 60 / bpm * SR), the loop's exact length
    parts: str
    kick: str
    hat: str
    clap: str
    clap_note: int
    bass: str
    bass_program: int
    root: int  # MIDI key of the bass root, 28-35 (E1-B1)
    key: str  # e.g. "A minor"
    stab: str
    stab_program: int
    stab_chord: str


class BeatGrid(NamedTuple):
    """Grid positions of a loop: ``times`` float64 seconds ``[n]``, ``samples`` int64 ``[n]``."""

    times: np.ndarray
    samples: np.ndarray


def beat_grid(bpm: float, bars: int, sr: int = SR, steps_per_beat: int = 1) -> BeatGrid:
    """Times of the beats (or of finer steps) of a loop, from 0 up to its end (excluded).

    Args:
        bpm: tempo in beats per minute.
        bars: loop length in 4/4 bars.
        sr: sample rate in Hz, for ``samples``.
        steps_per_beat: 1 for beats, 4 for the sixteenth-note grid the patterns use.

    Returns:
        ``BeatGrid(times, samples)``, each ``[bars * 4 * steps_per_beat]``; samples are rounded.

    Example:
        >>> beat_grid(120.0, 1).times            # array([0. , 0.5, 1. , 1.5])

    Lesson: lessons/00_tour.ipynb
    """
    _check_positive_int(bars, "bars", "a loop is a whole number of 4/4 bars, e.g. bars=2")
    _check_positive_int(steps_per_beat, "steps_per_beat", "use 1 for beats or 4 for sixteenths")
    if not bpm > 0:
        raise ValueError(f"bpm={bpm}: the tempo must be a positive number of beats per minute.")
    times = np.arange(bars * BEATS_PER_BAR * steps_per_beat) * 60.0 / (bpm * steps_per_beat)
    return BeatGrid(times, np.round(times * sr).astype(np.int64))


def draw_loop(
    pattern_seed: int,
    bars: int = 2,
    bpm_range: tuple[float, float] = BPM_RANGE,
    parts: Sequence[str] = PARTS,
    stab_prob: float = 0.5,
) -> LoopSpec:
    """Draw one loop's tempo, patterns and sounds from a generator seeded with ``pattern_seed``.

    Args:
        pattern_seed: a non-negative integer; the same seed and arguments give the same loop.
        bars, bpm_range, parts, stab_prob: as in :func:`render_loops`. Drums and bass play when
            named in ``parts``; the stab plays with probability ``stab_prob``.

    Returns:
        A :class:`LoopSpec`; :func:`render_loop` turns it into audio.

    Example:
        >>> spec = draw_loop(7, bars=1)   # spec.kick == "x...x...x...x..." or with a fill
        >>> x = render_loop(spec)         # float32 [spec.n_samples]

    Lesson: lessons/00_tour.ipynb
    """
    _check_options(bars, bpm_range, parts, stab_prob)
    rng = np.random.default_rng(pattern_seed)
    bpm = round(float(rng.uniform(*bpm_range)), 1)
    root = int(rng.integers(28, 36))
    plays = {"drums": "drums" in parts, "bass": "bass" in parts, "stab": "stab" in parts and rng.random() < stab_prob}
    kick, hat, clap = _drum_patterns(rng, bars)
    rest = "." * bars * STEPS_PER_BAR
    return LoopSpec(
        pattern_seed=int(pattern_seed),
        bpm=bpm,
        bars=bars,
        n_samples=round(bars * BEATS_PER_BAR * 60 / bpm * SR),
        parts="+".join(p for p in PARTS if plays[p]),
        kick=kick if plays["drums"] else rest,
        hat=hat if plays["drums"] else rest,
        clap=clap if plays["drums"] else rest,
        clap_note=int(rng.choice([CLAP, SNARE])) if plays["drums"] else -1,
        bass=_bass_pattern(rng, bars) if plays["bass"] else rest,
        bass_program=int(rng.choice(BASS_PROGRAMS)) if plays["bass"] else -1,
        root=root,
        key=f"{NOTE_NAMES[root % 12]} minor",
        stab=STAB_BARS[rng.integers(len(STAB_BARS))] * bars if plays["stab"] else rest,
        stab_program=int(rng.choice(STAB_PROGRAMS)) if plays["stab"] else -1,
        stab_chord=str(rng.choice(["m", "m7"])) if plays["stab"] else "",
    )


def _drum_patterns(rng: np.random.Generator, bars: int) -> tuple[str, str, str]:
    """Kick, hat and clap strings; the last bar may carry a fill (a kick on step 14, a clap on 15)."""
    kick, clap = list("x..." * BEATS_PER_BAR * bars), list("....x.......x..." * bars)
    if rng.random() < 0.3:
        kick[-2] = "x"
    if rng.random() < 0.3:
        clap[-1] = "x"
    hat = HAT_BEATS[rng.integers(len(HAT_BEATS))] * BEATS_PER_BAR * bars
    return "".join(kick), hat, "".join(clap)


def _bass_pattern(rng: np.random.Generator, bars: int) -> str:
    """A one-bar riff (off-beat, rolling or free), repeated; with 2+ bars the last beat may vary."""
    style = rng.choice(["offbeat", "rolling", "free"])
    pool = np.array(list("00002467"))
    steps = np.arange(STEPS_PER_BAR) % STEPS_PER_BEAT
    active = {"offbeat": steps == 2, "rolling": steps > 0, "free": rng.random(STEPS_PER_BAR) < 0.45}[style]
    active[2] |= not active.any()  # a free riff that drew no note gets one, so the bass never falls silent
    bar = np.where(active, rng.choice(pool, STEPS_PER_BAR), ".")
    last = bar.copy()
    if bars > 1 and rng.random() < 0.5:
        last[12:] = np.where(last[12:] != ".", rng.choice(pool, 4), ".")
    return "".join(bar) * (bars - 1) + "".join(last)


def loop_events(spec: LoopSpec) -> list[NoteEvent]:
    """The notes of one pass of a loop, times in seconds from its start (``[0, n_samples / SR)``).

    Drums and bass notes last one step, stab chords two.

    Lesson: lessons/00_tour.ipynb
    """
    step_s = 60.0 / (spec.bpm * STEPS_PER_BEAT)
    events = []
    for i in range(len(spec.kick)):
        start = i * step_s
        for key in _drum_keys(spec, i):
            velocity = ACCENT if key == CLOSED_HAT and i % STEPS_PER_BEAT == 2 else VELOCITY[key]
            events.append(NoteEvent(start, start + step_s, key, velocity, drum=True))
        if spec.bass[i] != ".":
            pitch = spec.root + MINOR_SCALE[int(spec.bass[i])]
            events.append(NoteEvent(start, start + step_s, pitch, VELOCITY["bass"], spec.bass_program))
        if spec.stab[i] == "x":
            for interval in (0, 3, 7, 10) if spec.stab_chord == "m7" else (0, 3, 7):
                pitch = spec.root + 24 + interval
                events.append(NoteEvent(start, start + 2 * step_s, pitch, VELOCITY["stab"], spec.stab_program))
    return events


def _drum_keys(spec: LoopSpec, i: int) -> list[int]:
    """The GM drum keys struck at step ``i``."""
    hats = {"x": [CLOSED_HAT], "o": [OPEN_HAT], ".": []}[spec.hat[i]]
    return [KICK] * (spec.kick[i] == "x") + [spec.clap_note] * (spec.clap[i] == "x") + hats


def render_loop(spec: LoopSpec, synth: SoundfontSynth | None = None) -> np.ndarray:
    """Render a loop that repeats seamlessly, scaled to a peak of ``PEAK``.

    The pattern plays ``1 + ceil(TAIL_S / loop length)`` times in a row and the last pass is kept,
    so its start holds the previous pass's releases (see the module docstring).

    Args:
        spec: the loop, from :func:`draw_loop`.
        synth: a ``SoundfontSynth(SR)`` to reuse across loops (making one loads the soundfont).

    Returns:
        float32 ``[spec.n_samples]`` at ``SR``, peak ``PEAK``.

    Lesson: lessons/00_tour.ipynb
    """
    synth = synth or SoundfontSynth(SR)
    if synth.sr != SR:
        raise ValueError(f"the synth runs at {synth.sr} Hz but loops are {SR} Hz: pass SoundfontSynth({SR}).")
    n = spec.n_samples
    n_passes = 1 + math.ceil(TAIL_S * SR / n)
    shifts = [k * n / SR for k in range(n_passes)]  # whole samples, so the passes line up exactly
    events = [replace(e, start=e.start + t, end=e.end + t) for t in shifts for e in loop_events(spec)]
    x = synth.render_events(events, n_passes * n / SR)[-n:]
    return (x * (PEAK / np.abs(x).max())).astype(np.float32)


def render_loops(
    root: str | Path | None = None,
    n_loops: int = 200,
    bars: int = 2,
    seed: int = 0,
    bpm_range: tuple[float, float] = BPM_RANGE,
    parts: Sequence[str] = PARTS,
    stab_prob: float = 0.5,
) -> Path:
    """Render ``n_loops`` loops to ``loop_NNNNN.wav`` (16-bit, 16 kHz) plus ``loops.json`` (metadata).

    Built once through :func:`coursekit.data.cache.cached_build` and reused while the arguments
    are the same. Loop ``i`` is ``draw_loop(pattern_seed_i, ...)`` with pattern seeds drawn from
    ``seed``. The default 200 two-bar loops (12.5 min of audio) take about 3 s on two cores.

    Args:
        root: the dataset folder; default ``data_dir() / "techno_loops_{n_loops}x{bars}bar_seed{seed}"``.
        n_loops: how many loops.
        bars: loop length in 4/4 bars (all loops the same).
        seed: seeds the pattern seeds, a non-negative integer.
        bpm_range: ``(low, high)`` tempo in BPM, within ``BPM_LIMITS``; each loop draws uniformly.
        parts: which of ``"drums"``, ``"bass"``, ``"stab"`` may play (drums or bass required).
        stab_prob: probability that a loop has a stab, when ``"stab"`` is in ``parts``.

    Returns:
        The dataset folder.

    Lesson: lessons/00_tour.ipynb
    """
    _check_positive_int(n_loops, "n_loops", "ask for at least one loop, e.g. n_loops=8")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: use a non-negative integer, e.g. seed=0.")
    _check_options(bars, bpm_range, parts, stab_prob)
    params = {
        "version": 1,
        "n_loops": n_loops,
        "bars": bars,
        "seed": int(seed),
        "bpm_range": [float(b) for b in bpm_range],
        "parts": [p for p in PARTS if p in parts],
        "stab_prob": float(stab_prob),
    }
    folder = Path(root) if root is not None else config.data_dir() / f"techno_loops_{n_loops}x{bars}bar_seed{seed}"

    def build(tmp: Path) -> None:
        synth = SoundfontSynth(SR)
        pattern_seeds = np.random.default_rng(seed).integers(0, 2**31, size=n_loops)
        records = []
        for i, pattern_seed in enumerate(pattern_seeds):
            spec = draw_loop(int(pattern_seed), bars, bpm_range, parts, stab_prob)
            name = f"loop_{i:05d}.wav"
            audio.save(tmp / name, torch.from_numpy(render_loop(spec, synth)), SR)
            records.append({"file": name, **asdict(spec)})
        (tmp / METADATA).write_text(json.dumps(records, indent=1))

    return cached_build(folder, params, build)


class TechnoLoops(Dataset):
    """Techno loops rendered from the soundfont, one item a loop, cached under the data folder.

    Items are dicts:

    - ``"audio"``: float32 Tensor ``[1, samples]`` in [-1, 1] (peak 0.9); ``samples`` is the loop's
      ``n_samples``, or ``length`` when given (the loop repeated seamlessly, then cut).
    - ``"sr"``: int, 16000 Hz.
    - the loop's metadata (see :class:`LoopSpec`): ``"bpm"`` float, ``"bars"`` int, ``"n_samples"``
      int (one pass), ``"pattern_seed"`` int, patterns ``"kick"``, ``"hat"``, ``"clap"``,
      ``"bass"``, ``"stab"`` (str, 16 steps a bar), ``"bass_program"``, ``"stab_program"`` (int,
      -1 when silent), ``"root"`` int, ``"key"``, ``"parts"``, ``"file"`` str, ``"index"`` int.

    Arguments are those of :func:`render_loops`, plus ``length`` (samples per item, so that a
    DataLoader can batch loops of different tempos; ``None`` keeps each loop's own length).

    Example:
        >>> loops = TechnoLoops(n_loops=8, bars=1, length=32000)
        >>> batch = next(iter(DataLoader(loops, batch_size=4)))   # batch["audio"]: [4, 1, 32000]
        >>> beat_grid(loops[0]["bpm"], loops[0]["bars"]).samples    # where the kicks fall

    Lesson: lessons/00_tour.ipynb
    """

    def __init__(
        self,
        root: str | Path | None = None,
        n_loops: int = 200,
        bars: int = 2,
        seed: int = 0,
        bpm_range: tuple[float, float] = BPM_RANGE,
        parts: Sequence[str] = PARTS,
        stab_prob: float = 0.5,
        length: int | None = None,
    ):
        if length is not None:
            _check_positive_int(length, "length", "give a number of samples, or None for each loop's own length")
        self.root = render_loops(root, n_loops, bars, seed, bpm_range, parts, stab_prob)
        self.records = json.loads((self.root / METADATA).read_text())
        self.length = length

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        x, _ = audio.load(self.root / record["file"])
        if self.length is not None:
            x = x.repeat(1, math.ceil(self.length / x.shape[-1]))[:, : self.length]
        return {"audio": x, "sr": SR, "index": index, **record}


def _check_positive_int(value: int, name: str, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive whole number: {hint}.")


def _check_options(bars: int, bpm_range: tuple[float, float], parts: Sequence[str], stab_prob: float) -> None:
    _check_positive_int(bars, "bars", "a loop is a whole number of 4/4 bars, e.g. bars=2")
    if len(bpm_range) != 2 or not BPM_LIMITS[0] <= bpm_range[0] <= bpm_range[1] <= BPM_LIMITS[1]:
        raise ValueError(
            f"bpm_range={tuple(bpm_range)}: give (low, high) with {BPM_LIMITS[0]:g} <= low <= high <= "
            f"{BPM_LIMITS[1]:g} BPM (techno is about 120-135)."
        )
    unknown = [p for p in parts if p not in PARTS]
    if isinstance(parts, str) or unknown or not {"drums", "bass"} & set(parts):
        raise ValueError(f"parts={parts!r}: name some of {PARTS} in a tuple, including 'drums' or 'bass'.")
    if not 0 <= stab_prob <= 1:
        raise ValueError(f"stab_prob={stab_prob}: a probability must lie in [0, 1].")
