"""Bach chorales and folk tunes from music21's corpus as two-hand piano rolls, and back to MIDI.

Two styles, both read offline from the corpus that ships inside music21:

- style 0, ``"chorale"``: the Riemenschneider Bach chorales (``music21.corpus.chorales``), the
  350 distinct files of its 371 numbers, kept when they have exactly four parts (331 do). Right
  hand = soprano and alto, left hand = tenor and bass.
- style 1, ``"folk"``: Ryan's Mammoth Collection (1883), 1,059 fiddle tunes (reels, jigs,
  hornpipes, strathspeys), one tune a file. They are printed as a single melody line (with a few
  double stops), so the right hand is the melody and **the left hand is empty in every folk piece**.

The representation, on a sixteenth-note grid (``STEPS_PER_QUARTER = 4``):

- ``roll`` float32 ``[steps, 102]``: 1 where a note sounds. Columns 0-50 are the right hand,
  MIDI pitches 34..84; columns 51-101 the left hand, the same pitches. Column = 51 * hand + pitch - 34.
- ``onsets`` float32 ``[steps, 102]``: 1 where a note starts (so repeated notes survive), always
  inside ``roll``.

How scores are put on the grid (:func:`score_to_pianoroll`):

- parts: the upper half of the parts (rounded up) go to the right hand, the rest to the left, so
  four parts split 2 + 2 and a single part is all right hand. Two voices of one hand on the same
  pitch merge into one column.
- step 0 is the first bar line: a pickup is preceded by the rests that complete its bar.
- ties are merged into one note; grace notes are dropped; note starts and ends are rounded to the
  nearest sixteenth, and a note left with no length (the middle of a fast triplet) is dropped.
  Both kinds are counted in ``n_dropped``.
- pitches outside 34..84 are moved by whole octaves into range and counted in ``n_folded``
  (no chorale note needs it; about 0.3 % of the folk notes, all above 84, do).
- repeats are not expanded: a piece is played as written once.

Example:
    >>> rolls = PianoRolls(window=64, hop=16, transpose=3)   # parses the corpus once: 1.5 to 3 min
    >>> item = rolls[0]; item["roll"].shape, item["style_str"]
    (torch.Size([64, 102]), 'chorale')
    >>> midi = pianoroll_to_midi(item["roll"], item["onsets"], tempo_bpm=90)

Lesson: lessons/07_pianoroll_gru_vae.ipynb
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import music21
import numpy as np
import pretty_midi
import torch
from torch.utils.data import Dataset

from coursekit import config
from coursekit.data.cache import cached_build
from coursekit.data.music import STYLES, check_style, corpus_pieces, score_notes, usable_score

LOWEST, HIGHEST = 34, 84  # MIDI pitch range of each hand, inclusive
N_PITCHES = HIGHEST - LOWEST + 1  # 51
N_COLUMNS = 2 * N_PITCHES  # 102: right hand then left hand
STEPS_PER_QUARTER = 4  # a sixteenth-note grid
_CACHE_VERSION = 1


@dataclass
class PianoRoll:
    """A whole piece on the grid: ``roll`` and ``onsets`` float32 ``[steps, 102]`` and what it cost."""

    roll: np.ndarray
    onsets: np.ndarray
    n_notes: int  # notes on the grid
    n_folded: int  # notes moved by octaves into LOWEST..HIGHEST
    n_dropped: int  # grace notes, and notes whose start and end round to the same step


def _fold(pitch: int) -> int:
    while pitch < LOWEST:
        pitch += 12
    while pitch > HIGHEST:
        pitch -= 12
    return pitch


def score_to_pianoroll(score: music21.stream.Score) -> PianoRoll:
    """Put one score on the two-hand grid (rules in the module docstring).

    Args:
        score: a ``music21.stream.Score`` with one or more parts, highest part first.

    Returns:
        A :class:`PianoRoll`; ``roll`` and ``onsets`` are float32 ``[steps, 102]`` with ``steps``
        the end of the last note in sixteenths.

    Example:
        >>> from coursekit.data.music import load_score
        >>> pr = score_to_pianoroll(load_score("bach/bwv269"))
        >>> pr.roll.shape, pr.n_folded
        ((260, 102), 0)

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    notes = score_notes(score)
    n_right = math.ceil(len(score.parts) / 2)
    placed, n_dropped = [], sum(1 for n in score.recurse().notes if n.duration.isGrace)
    for n in notes:
        start = math.floor(n.start * STEPS_PER_QUARTER + 0.5)
        end = math.floor(n.end * STEPS_PER_QUARTER + 0.5)
        if end <= start:
            n_dropped += 1
            continue
        hand = 0 if n.part < n_right else 1
        placed.append((start, end, hand * N_PITCHES + _fold(n.pitch) - LOWEST))
    steps = max((end for _, end, _ in placed), default=0)
    roll = np.zeros((steps, N_COLUMNS), dtype=np.float32)
    onsets = np.zeros_like(roll)
    for start, end, column in placed:
        roll[start:end, column] = 1.0
        onsets[start, column] = 1.0
    n_folded = sum(1 for n in notes if _fold(n.pitch) != n.pitch)
    return PianoRoll(roll, onsets, len(placed), n_folded, n_dropped)


# ----------------------------------------------------------------------------- back to MIDI
def _as_binary(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim != 2 or x.shape[1] != N_COLUMNS:
        raise ValueError(f"{name} has shape {list(x.shape)}: expected [steps, {N_COLUMNS}] (one window, no batch).")
    if not np.isin(x, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1: threshold model outputs first, e.g. ({name} > 0.5).")
    return x.astype(bool)


def _column_notes(sounding: np.ndarray, starts: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) steps of the notes in one column: a note runs until silence or the next onset."""
    begins = sounding & (starts | ~np.concatenate(([False], sounding[:-1])))
    edges = np.flatnonzero(begins)
    notes = []
    for begin in edges:
        end = begin + 1
        while end < len(sounding) and sounding[end] and not begins[end]:
            end += 1
        notes.append((int(begin), end))
    return notes


def pianoroll_to_midi(
    roll: np.ndarray | torch.Tensor,
    onsets: np.ndarray | torch.Tensor | None = None,
    tempo_bpm: float = 100.0,
    program: int = 0,
    velocity: int = 80,
) -> pretty_midi.PrettyMIDI:
    """Turn a two-hand piano roll back into MIDI: instruments ``"right hand"`` and ``"left hand"``.

    Args:
        roll: 0/1 ``[steps, 102]`` (numpy or tensor), 1 where a note sounds.
        onsets: 0/1 ``[steps, 102]``, 1 where a note starts; must lie inside ``roll``. ``None``
            makes every unbroken run of sounding steps one note.
        tempo_bpm: quarter notes per minute; one step lasts ``60 / tempo_bpm / 4`` seconds.
        program: 0-based General MIDI program of both hands (0 is the acoustic piano).
        velocity: MIDI velocity 1-127 of every note.

    Returns:
        A ``pretty_midi.PrettyMIDI``; play it with ``SoundfontSynth().render_midi(midi)``.

    Example:
        >>> pr = score_to_pianoroll(load_score("bach/bwv269"))
        >>> midi = pianoroll_to_midi(pr.roll, pr.onsets, tempo_bpm=80)
        >>> x = coursekit.data.soundfont.SoundfontSynth(sr=16000).render_midi(midi)   # float32 [samples]

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    sounding = _as_binary(roll, "roll")
    starts = np.zeros_like(sounding) if onsets is None else _as_binary(onsets, "onsets")
    if starts.shape != sounding.shape:
        raise ValueError(f"onsets {list(starts.shape)} and roll {list(sounding.shape)} must have the same shape.")
    if (starts & ~sounding).any():
        raise ValueError("onsets has a 1 where roll is 0: a note can only start where it sounds (use onsets * roll).")
    if tempo_bpm <= 0:
        raise ValueError(f"tempo_bpm={tempo_bpm}: use a positive number of quarter notes per minute.")
    step = 60.0 / tempo_bpm / STEPS_PER_QUARTER
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    for hand, name in enumerate(("right hand", "left hand")):
        instrument = pretty_midi.Instrument(program=program, name=name)
        for offset in range(N_PITCHES):
            column = hand * N_PITCHES + offset
            for begin, end in _column_notes(sounding[:, column], starts[:, column]):
                note = pretty_midi.Note(velocity, LOWEST + offset, begin * step, end * step)
                instrument.notes.append(note)
        midi.instruments.append(instrument)
    return midi


# ----------------------------------------------------------------------------- the cached corpus
def _build_style(folder: Path, style: str, max_pieces: int | None) -> None:
    """Parse the pieces of one style and write ``rolls.npz`` and ``pieces.json`` into ``folder``."""
    pieces, skipped, rolls = [], {}, []
    for piece in corpus_pieces(style):
        if max_pieces is not None and len(pieces) == max_pieces:
            break
        score, reason = usable_score(style, piece)
        if score is None:
            skipped[piece] = reason
            continue
        pr = score_to_pianoroll(score)
        rolls.append(pr)
        counts = {"n_notes": pr.n_notes, "n_folded": pr.n_folded, "n_dropped": pr.n_dropped}
        pieces.append({"piece": piece, "steps": len(pr.roll), "n_parts": len(score.parts)} | counts)
    if not rolls:
        raise RuntimeError(f"no usable {style} piece in music21's corpus (skipped: {skipped}): reinstall music21.")
    ends = np.cumsum([0] + [len(pr.roll) for pr in rolls])
    roll = np.concatenate([pr.roll for pr in rolls]).astype(np.uint8)
    onsets = np.concatenate([pr.onsets for pr in rolls]).astype(np.uint8)
    np.savez_compressed(folder / "rolls.npz", roll=roll, onsets=onsets, ends=ends)
    (folder / "pieces.json").write_text(json.dumps({"style": style, "pieces": pieces, "skipped": skipped}, indent=1))


def build_pianorolls(style: str, root: str | Path | None = None, max_pieces: int | None = None) -> Path:
    """Parse a style's pieces once and cache their piano rolls; return the cache folder.

    The folder ``<root>/<style>-<max_pieces or "all">`` holds ``rolls.npz`` (``roll`` and
    ``onsets`` uint8 ``[total_steps, 102]`` of all pieces end to end, ``ends`` int64
    ``[pieces + 1]`` where each piece starts and ends) and ``pieces.json`` (per piece: name,
    steps, parts, ``n_notes``, ``n_folded``, ``n_dropped``; and the skipped pieces with why).

    Args:
        style: ``"chorale"`` or ``"folk"``.
        root: the cache folder; default ``config.data_dir() / "pianorolls"``.
        max_pieces: keep only the first this many usable pieces (FAST mode); None keeps all.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    check_style(style)
    if max_pieces is not None and (not isinstance(max_pieces, int) or max_pieces < 1):
        raise ValueError(f"max_pieces={max_pieces!r}: use a positive whole number, or None for every piece.")
    root = Path(root) if root is not None else config.data_dir() / "pianorolls"
    params = {
        "version": _CACHE_VERSION,
        "style": style,
        "max_pieces": max_pieces,
        "pitches": [LOWEST, HIGHEST],
        "steps_per_quarter": STEPS_PER_QUARTER,
        "music21": music21.__version__,
    }
    folder = root / f"{style}-{max_pieces or 'all'}"
    return cached_build(folder, params, lambda tmp: _build_style(tmp, style, max_pieces))


# ----------------------------------------------------------------------------- the dataset
def _transpose(block: np.ndarray, shift: int) -> np.ndarray:
    """Move every note of both hands ``shift`` semitones; the caller keeps them in range."""
    hands = block.reshape(len(block), 2, N_PITCHES)
    moved = np.zeros_like(hands)
    if shift >= 0:
        moved[:, :, shift:] = hands[:, :, : N_PITCHES - shift]
    else:
        moved[:, :, :shift] = hands[:, :, -shift:]
    return moved.reshape(len(block), N_COLUMNS)


def _shift_range(roll: np.ndarray, transpose: int) -> tuple[int, int]:
    """The smallest and largest shift within ±transpose that keeps every sounding pitch in range."""
    used = np.flatnonzero(roll.reshape(len(roll), 2, N_PITCHES).any(axis=(0, 1)))
    if len(used) == 0:
        return -transpose, transpose
    return max(-transpose, -int(used[0])), min(transpose, N_PITCHES - 1 - int(used[-1]))


class PianoRolls(Dataset):
    """Fixed-length two-hand piano-roll windows of Bach chorales (style 0) and folk tunes (style 1).

    Each piece is parsed once and cached (:func:`build_pianorolls`); windows of ``window`` steps
    start every ``hop`` steps and lie wholly inside their piece (a piece shorter than ``window``
    gives none, with a warning). With ``transpose > 0`` each item is shifted by a random number of
    semitones in ``[-transpose, transpose]``, drawn from ``(seed, epoch, index)`` among the shifts
    that keep all its notes in 34..84; call :meth:`set_epoch` to draw new shifts. A note already
    sounding at a window's first step has an onset there: each window is a little piece of its own,
    and :func:`pianoroll_to_midi` turns it into MIDI and back into exactly the same window.

    Item (a dict; DataLoader's default collate batches it):
        ``roll``: float32 ``[window, 102]``, 1 where a note sounds (columns in the module docstring);
        ``onsets``: float32 ``[window, 102]``, 1 where a note starts;
        ``style``: int (0 chorale, 1 folk); ``style_str``: str; ``piece``: corpus name, str;
        ``start_step``: int, first sixteenth of the window in its piece; ``transpose``: int semitones.

    Args:
        styles: a style or several, from ``STYLES``; style numbers stay 0 chorale, 1 folk.
        window: steps per item (64 = four bars of 4/4).
        hop: steps between window starts.
        transpose: largest shift in semitones (0 for none).
        root: cache folder; default ``config.data_dir() / "pianorolls"``.
        max_pieces: pieces per style (None for all); FAST mode uses a few.
        seed: seeds the transpositions.

    Example:
        >>> rolls = PianoRolls(window=64, hop=16, transpose=3, max_pieces=config.pick(None, 8))
        >>> loader = torch.utils.data.DataLoader(rolls, batch_size=32, shuffle=True)
        >>> batch = next(iter(loader)); batch["roll"].shape          # torch.Size([32, 64, 102])

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """

    def __init__(
        self,
        styles: str | tuple[str, ...] | list[str] = STYLES,
        window: int = 64,
        hop: int = 16,
        transpose: int = 0,
        root: str | Path | None = None,
        max_pieces: int | None = None,
        seed: int = 0,
    ):
        for name, value, low in (("window", window, 1), ("hop", hop, 1), ("transpose", transpose, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r}: use a whole number of at least {low}.")
        if transpose >= N_PITCHES:
            raise ValueError(f"transpose={transpose}: a shift must stay below {N_PITCHES} semitones.")
        self.window, self.hop, self.transpose, self.seed, self.epoch = window, hop, transpose, seed, 0
        self.pieces: list[dict] = []  # per piece: style, piece, roll, onsets (uint8 [steps, 102])
        self.windows: list[tuple[int, int]] = []  # per item: (index into pieces, start step)
        for style in dict.fromkeys((styles,) if isinstance(styles, str) else styles):
            self._load_style(build_pianorolls(style, root, max_pieces), style)

    def _load_style(self, folder: Path, style: str) -> None:
        data = np.load(folder / "rolls.npz")
        roll, onsets, ends = data["roll"], data["onsets"], data["ends"]
        names = [p["piece"] for p in json.loads((folder / "pieces.json").read_text())["pieces"]]
        short = []
        for name, begin, end in zip(names, ends[:-1], ends[1:], strict=True):
            starts = range(0, int(end - begin) - self.window + 1, self.hop)
            short += [] if starts else [name]
            self.windows += [(len(self.pieces), start) for start in starts]
            self.pieces.append({"style": style, "piece": name, "roll": roll[begin:end], "onsets": onsets[begin:end]})
        if short:
            warnings.warn(
                f"{len(short)} {style} piece(s) are shorter than window={self.window} steps and give no windows "
                f"(e.g. {', '.join(short[:3])}); use a smaller window to keep them.",
                stacklevel=3,
            )

    def set_epoch(self, epoch: int) -> None:
        """Draw a new set of transpositions (deterministic for a given ``seed`` and ``epoch``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        number, start = self.windows[index]
        piece = self.pieces[number]
        roll = piece["roll"][start : start + self.window]
        onsets = piece["onsets"][start : start + self.window].copy()
        onsets[0] = roll[0]  # a note cut by the window's start begins again there
        low, high = _shift_range(roll, self.transpose)
        shift = int(np.random.default_rng([self.seed, self.epoch, index]).integers(low, high + 1))
        return {
            "roll": torch.from_numpy(_transpose(roll, shift).astype(np.float32)),
            "onsets": torch.from_numpy(_transpose(onsets, shift).astype(np.float32)),
            "style": STYLES.index(piece["style"]),
            "style_str": piece["style"],
            "piece": piece["piece"],
            "start_step": start,
            "transpose": shift,
        }
