"""The music21 corpus as music: two styles of pieces, their notes, and recordings of them.

Everything comes from the corpus that ships inside music21 (nothing is downloaded):

- ``"chorale"`` (style 0): the Riemenschneider Bach chorales, the 350 distinct files behind its
  371 numbers, used when they have exactly four parts (soprano, alto, tenor, bass): 331 do.
- ``"folk"`` (style 1): Ryan's Mammoth Collection (1883), 1,059 fiddle tunes, one a file, each a
  single melody line with a few double stops.

:func:`render_music` plays whole pieces through the General MIDI soundfont
(:class:`~coursekit.data.soundfont.SoundfontSynth`): each chorale on one of several four-voice
ensembles (string quartet, organ, piano, woodwinds, brass, choir), each folk tune on a fiddle,
flute, accordion or recorder, at a fixed tempo per style, as written (repeats not expanded).
Recordings are 16 kHz mono, peak-normalised to 0.9, and are the music of the raw-audio lessons.

A known flaw, kept: the "organ" ensemble plays General MIDI program 19 (church organ), whose samples
in this soundfont sound an octave high below key 60 and an octave low above it (lesson 00 measures
+1,207 and -1,199 cents at keys 42 and 74), so organ chorales keep their pitch classes but fold
their voices towards middle C. Program 20 (reed organ) is in tune; switching would change the
recordings that lesson 03's shipped checkpoints were trained and measured on.

Example:
    >>> recordings = MusicRecordings(n_pieces=config.pick(full=40, fast=4))
    >>> x = coursekit.audio.random_crop(recordings[0]["audio"], 16000)   # one second of music

Lesson: lessons/03_raw_audio_pitfalls.ipynb
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
from music21 import corpus
from torch.utils.data import Dataset

from coursekit import audio, config
from coursekit.data.cache import cached_build
from coursekit.data.soundfont import SoundfontSynth

STYLES = ("chorale", "folk")  # style index = position in this tuple
FOLK_COLLECTION = "ryansMammoth"
TEMPO_BPM = {"chorale": 80.0, "folk": 112.0}  # quarter notes per minute
ENSEMBLES = {  # 0-based General MIDI programs, highest voice first
    "chorale": {
        "string quartet": (40, 40, 41, 42),
        "organ": (19, 19, 19, 19),  # church organ: octave-inconsistent in this soundfont (module docstring)
        "piano": (0, 0, 0, 0),
        "woodwinds": (73, 68, 71, 70),
        "brass": (56, 60, 57, 58),
        "choir": (52, 52, 52, 52),
    },
    "folk": {"fiddle": (110,), "flute": (73,), "accordion": (21,), "recorder": (74,)},
}
RELEASE_S = 1.0  # seconds rendered after the last note ends
PEAK = 0.9  # peak level of every recording
_CACHE_VERSION = 1


# ----------------------------------------------------------------------------- scores
def check_style(style: str) -> None:
    """Raise a ValueError naming the known styles unless ``style`` is one of ``STYLES``."""
    if style not in STYLES:
        raise ValueError(f"style={style!r} is not known: use one of {STYLES}.")


def corpus_pieces(style: str) -> list[str]:
    """The corpus names of every candidate piece of a style, e.g. ``"bach/bwv269"``, in a fixed order.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    check_style(style)
    if style == "chorale":
        return list(dict.fromkeys(corpus.chorales.Iterator(returnType="filename")))
    return sorted(f"{FOLK_COLLECTION}/{path.stem}" for path in corpus.getComposer(FOLK_COLLECTION))


def load_score(piece: str) -> music21.stream.Score:
    """Parse one corpus piece (``"bach/bwv269"``, ``"ryansMammoth/7thRegimentReel"``) into a Score.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    score = corpus.parse(piece)
    if not isinstance(score, music21.stream.Score):
        raise ValueError(f"{piece} holds a {type(score).__name__}, not one score: pick a single piece.")
    return score


def usable_score(style: str, piece: str) -> tuple[music21.stream.Score | None, str]:
    """``(score, "")`` for a piece the course uses, else ``(None, why)``.

    Chorales without exactly four parts are left out; a file music21 cannot parse is left out
    with a warning naming it.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    try:
        score = load_score(piece)
    except Exception as err:  # any corpus file music21 cannot read is skipped, not fatal
        warnings.warn(f"skipping {piece}: music21 could not parse it ({err})", stacklevel=2)
        return None, f"parse error: {err}"
    if style == "chorale" and len(score.parts) != 4:
        return None, f"{len(score.parts)} parts, not 4"
    return score, ""


@dataclass(frozen=True)
class ScoreNote:
    """One note of a score: ``part`` index, MIDI ``pitch`` as written, ``start``/``end`` in quarter notes."""

    part: int
    pitch: int
    start: float  # quarter notes after the first bar line
    end: float


def _pickup_quarters(part: music21.stream.Part) -> float:
    """The rests that complete an incomplete first bar, in quarters rounded to a sixteenth."""
    measures = part.getElementsByClass(music21.stream.Measure)
    padding = float(measures[0].paddingLeft) if len(measures) else 0.0
    return math.floor(padding * 4 + 0.5) / 4


def _part_notes(part: music21.stream.Part, index: int, shift: float) -> list[ScoreNote]:
    """The sounding notes of one part with ties merged and grace notes left out."""
    notes, tied = [], {}  # tied: pitch -> position in notes of the note its tie continues
    for element in part.flatten().notes:
        if element.duration.isGrace:
            continue
        start = float(element.offset) + shift
        end = start + float(element.quarterLength)
        for sub in element.notes if element.isChord else [element]:
            tie = sub.tie or element.tie
            kind = tie.type if tie is not None else None
            pitch = sub.pitch.midi
            if kind in ("stop", "continue") and pitch in tied:
                old = notes[tied[pitch]]
                notes[tied[pitch]] = ScoreNote(index, pitch, old.start, end)
            else:
                notes.append(ScoreNote(index, pitch, start, end))
                tied[pitch] = len(notes) - 1
            if kind not in ("start", "continue"):
                tied.pop(pitch, None)
    return notes


def score_notes(score: music21.stream.Score) -> list[ScoreNote]:
    """Every sounding note of a score: ties merged, grace notes left out, time 0 at the first bar line.

    Returns:
        A list of :class:`ScoreNote`, part by part (part 0 is the highest).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if not score.parts:
        raise ValueError("the score has no parts: pass a music21 Score with at least one Part.")
    shift = _pickup_quarters(score.parts[0])
    return [n for i, part in enumerate(score.parts) for n in _part_notes(part, i, shift)]


def score_to_midi(
    score: music21.stream.Score, programs: tuple[int, ...], tempo_bpm: float, velocity: int = 90
) -> pretty_midi.PrettyMIDI:
    """One instrument per part, part ``i`` on ``programs[i % len(programs)]``; time 0 at the first note.

    Example:
        >>> midi = score_to_midi(load_score("bach/bwv269"), ENSEMBLES["chorale"]["brass"], tempo_bpm=80)

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    if not programs or tempo_bpm <= 0:
        raise ValueError(f"programs={programs}, tempo_bpm={tempo_bpm}: give at least one program and a positive tempo.")
    notes = score_notes(score)
    first = min((n.start for n in notes), default=0.0)
    seconds = 60.0 / tempo_bpm
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    for i, part in enumerate(score.parts):
        instrument = pretty_midi.Instrument(programs[i % len(programs)], name=part.partName or f"part {i}")
        instrument.notes = [
            pretty_midi.Note(velocity, n.pitch, (n.start - first) * seconds, (n.end - first) * seconds)
            for n in notes
            if n.part == i
        ]
        midi.instruments.append(instrument)
    return midi


# ----------------------------------------------------------------------------- recordings
def _choose_pieces(style: str, count: int, rng: np.random.Generator) -> list[tuple[str, music21.stream.Score]]:
    candidates = corpus_pieces(style)
    chosen = []
    for i in rng.permutation(len(candidates)):
        if len(chosen) == count:
            break
        score, _ = usable_score(style, candidates[i])
        if score is not None:
            chosen.append((candidates[i], score))
    return chosen


def _build_recordings(folder: Path, n_pieces: int, seed: int, sr: int) -> None:
    """Render the chosen pieces into ``folder/audio/*.wav`` and describe them in ``metadata.json``."""
    rng = np.random.default_rng(seed)
    counts = {"chorale": math.ceil(n_pieces / 2), "folk": n_pieces // 2}
    synth, records = SoundfontSynth(sr), []
    for style, count in counts.items():
        for piece, score in _choose_pieces(style, count, rng):
            ensemble = str(rng.choice(sorted(ENSEMBLES[style])))
            programs = ENSEMBLES[style][ensemble]
            midi = score_to_midi(score, programs, TEMPO_BPM[style])
            x = synth.render_midi(midi, duration=midi.get_end_time() + RELEASE_S)
            name = f"audio/{len(records):03d}_{piece.replace('/', '_')}.wav"
            audio.save(folder / name, audio.peak_normalize(torch.from_numpy(x)[None], PEAK), sr)
            records.append(
                {
                    "file": name,
                    "piece": piece,
                    "style": STYLES.index(style),
                    "style_str": style,
                    "ensemble": ensemble,
                    "programs": ",".join(map(str, programs[: len(score.parts)])),
                    "tempo_bpm": TEMPO_BPM[style],
                    "duration": len(x) / sr,
                }
            )
    (folder / "metadata.json").write_text(json.dumps({"sr": sr, "recordings": records}, indent=1))


def render_music(root: str | Path | None = None, n_pieces: int | None = None, seed: int = 0, sr: int = 16000) -> Path:
    """Render pieces of both styles to wav files once; return their folder.

    The folder ``<root>/<n_pieces>pieces-seed<seed>-<sr>hz`` holds ``audio/NNN_<piece>.wav`` and
    ``metadata.json``: ``{"sr": sr, "recordings": [{"file", "piece", "style", "style_str",
    "ensemble", "programs" ("40,40,41,42"), "tempo_bpm", "duration" (seconds)}, ...]}``.

    Args:
        root: cache folder; default ``config.data_dir() / "music"``.
        n_pieces: how many pieces, half of them chorales (rounded up), the rest folk tunes;
            default 40 (4 in FAST mode). 40 pieces are about 23 minutes of audio (43 MB), built in about 13 s.
        seed: which pieces and which ensemble plays each.
        sr: sample rate in Hz.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    n_pieces = config.pick(full=40, fast=4) if n_pieces is None else n_pieces
    if not isinstance(n_pieces, int) or n_pieces < 1:
        raise ValueError(f"n_pieces={n_pieces!r}: use a positive whole number of pieces.")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: use a non-negative whole number.")
    root = Path(root) if root is not None else config.data_dir() / "music"
    params = {"version": _CACHE_VERSION, "n_pieces": n_pieces, "seed": seed, "sr": sr, "music21": music21.__version__}
    folder = root / f"{n_pieces}pieces-seed{seed}-{sr}hz"
    return cached_build(folder, params, lambda tmp: _build_recordings(tmp, n_pieces, seed, sr))


class MusicRecordings(Dataset):
    """Whole recordings of chorales and folk tunes rendered by :func:`render_music`.

    Items have different lengths, so crop before batching (``coursekit.audio.random_crop``).

    Item (a dict):
        ``audio``: float32 Tensor ``[1, samples]`` in [-1, 1] (peak 0.9); ``sr``: int, Hz;
        ``piece``: corpus name, str; ``style``: int (0 chorale, 1 folk); ``style_str``: str;
        ``ensemble``: str; ``programs``: GM programs per part, highest first, str ``"40,40,41,42"``;
        ``tempo_bpm``: float; ``duration``: float, seconds.

    Args:
        root, n_pieces, seed, sr: as in :func:`render_music`.
        styles: keep only this style or these styles.

    Example:
        >>> recordings = MusicRecordings(n_pieces=4)
        >>> item = recordings[0]; item["audio"].shape, item["ensemble"]

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """

    def __init__(
        self,
        root: str | Path | None = None,
        n_pieces: int | None = None,
        seed: int = 0,
        sr: int = 16000,
        styles: str | tuple[str, ...] | list[str] = STYLES,
    ):
        styles = (styles,) if isinstance(styles, str) else tuple(styles)
        for style in styles:
            check_style(style)
        self.folder = render_music(root, n_pieces, seed, sr)
        metadata = json.loads((self.folder / "metadata.json").read_text())
        self.sr = metadata["sr"]
        self.recordings = [r for r in metadata["recordings"] if r["style_str"] in styles]

    def __len__(self) -> int:
        return len(self.recordings)

    def __getitem__(self, index: int) -> dict:
        record = self.recordings[index]
        x, sr = audio.load(self.folder / record["file"])
        return {"audio": x, "sr": sr} | {k: v for k, v in record.items() if k != "file"}
