"""NSynth's on-disk format: read the real NSynth, and render NSynth-mini in the same format.

The format of the NSynth json/wav release (https://magenta.tensorflow.org/datasets/nsynth)::

    <root>/nsynth-<split>/examples.json           {note_str: metadata} for split train, valid or test
    <root>/nsynth-<split>/audio/<note_str>.wav    16 kHz, mono, 16-bit, 4 s (3 s held, then released)

A note_str reads ``<instrument_str>-<pitch:03d>-<velocity:03d>``, e.g. ``guitar_acoustic_024-060-100``.
:class:`NSynth` reads that format from the real dataset or from NSynth-mini, which
:func:`render_nsynth_mini` renders offline through the General MIDI soundfont of
``coursekit.data.soundfont``: 11 families mapped from GM programs, split by program so that no
valid or test program is trained on. A program is not a recording: some held-out programs replay
samples that training programs also play (4 of the 11 test programs and 1 of the 11 valid ones use
only such samples; ``coursekit.data.sf2`` measures it, lesson 00 prints it). NSynth-mini has no
quality annotations: every note has ``qualities`` all 0 and ``qualities_str`` ``[]``.

Example:
    >>> train = NSynth(render_nsynth_mini(), "train", families=["guitar", "flute"])
    >>> item = train[0]          # item["audio"]: Tensor [1, 64000], item["pitch"]: MIDI key

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import json
import math
import struct
import warnings
from collections.abc import Iterable
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from coursekit import audio, config
from coursekit.data.cache import cached_build
from coursekit.data.instruments import BAD_KEYS, FAMILY_PITCHES, INSTRUMENTS, KEY_RANGES, TRANSPOSE, Instrument
from coursekit.data.soundfont import SoundfontSynth

FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal")
SOURCES = ("acoustic", "electronic", "synthetic")
SPLITS = ("train", "valid", "test")
SR = 16000  # NSynth's sample rate, Hz
DURATION, HOLD = 4.0, 3.0  # seconds per note, seconds held before the key is released
VELOCITIES = (25, 50, 75, 100, 127)  # NSynth's five velocities
PEAK = 0.9  # every NSynth-mini note is scaled to this peak
SIZES = {"tiny": 2, "mini": 20, "full": None}  # notes per instrument; None: every pitch and velocity
NSYNTH_URL = "https://magenta.tensorflow.org/datasets/nsynth"
ITEM_KEYS = (
    "pitch", "velocity", "instrument", "instrument_str", "instrument_family", "instrument_family_str",
    "instrument_source", "instrument_source_str", "note_str",
)  # fmt: skip
_FORMAT_VERSION = 1  # bump when the rendering changes, so cached copies are rebuilt


# ----------------------------------------------------------------------------- reading
class NSynth(Dataset):
    """Notes in NSynth's on-disk format (the real NSynth or NSynth-mini), filtered, in note_str order.

    Args:
        root: the folder holding ``nsynth-train``, ``nsynth-valid`` and/or ``nsynth-test``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        families: keep these families (names such as ``"guitar"`` or indices 0-10); None keeps all.
        sources: keep these sources (``"acoustic"``, ``"electronic"``, ``"synthetic"`` or 0-2).
        pitch_range: ``(low, high)`` MIDI keys, inclusive.
        velocities: keep these velocities, e.g. ``[100, 127]``.
        sr: resample the audio to this rate in Hz when loading; None keeps NSynth's 16000.

    Items are dicts: ``"audio"`` float32 Tensor ``[1, 4 * sr]`` in [-1, 1]; ``"sr"`` int Hz;
    ``"pitch"`` MIDI key and ``"velocity"`` 1-127 (ints); ``"instrument"`` int id;
    ``"instrument_family"`` 0-10 and ``"instrument_source"`` 0-2 (ints) with their names in the
    ``*_str`` keys; ``"instrument_str"`` and ``"note_str"`` (strs). ``self.examples`` holds the full
    metadata of every selected note (qualities included) without loading audio.

    Raises:
        FileNotFoundError: no such root, split folder or examples.json (says how to get NSynth).
        ValueError: corrupt examples.json, unknown filter values, or nothing left after filtering.
        Warns (and skips) for a listed note whose wav is missing; loading a wav that is not
        16 kHz mono 4 s raises a ValueError naming the file.

    Example:
        >>> notes = NSynth(render_nsynth_mini(), "test", pitch_range=(48, 72))
        >>> batch = next(iter(torch.utils.data.DataLoader(notes, batch_size=8)))   # batch["audio"]: [8, 1, 64000]

    Lesson: lessons/00_tour.ipynb
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        families: Iterable[str | int] | str | int | None = None,
        sources: Iterable[str | int] | str | int | None = None,
        pitch_range: tuple[int, int] | None = None,
        velocities: Iterable[int] | int | None = None,
        sr: int | None = None,
    ):
        self.folder = _split_folder(Path(root).expanduser(), split)
        self.sr = SR if sr is None else audio.check_sr(sr)
        examples = _present(_read_examples(self.folder / "examples.json"), self.folder / "audio")
        keep = _note_filter(families, sources, pitch_range, velocities)
        self.examples = [e for e in examples if keep(e)]
        if not self.examples:
            raise ValueError(
                f"no notes in {self.folder} match families={families!r}, sources={sources!r}, "
                f"pitch_range={pitch_range}, velocities={velocities} (of {len(examples)} notes): widen the filters."
            )

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        example = self.examples[index]
        x = load_note(self.folder / "audio" / f"{example['note_str']}.wav")
        item = {key: example[key] for key in ITEM_KEYS}
        return {"audio": audio.resample(x, SR, self.sr), "sr": self.sr, **item}


class NSynthMini(NSynth):
    """NSynth-mini, rendered on first use: ``NSynth(render_nsynth_mini(root, size, seed), split, ...)``.

    Example:
        >>> flutes = NSynthMini("train", families=["flute"])

    Lesson: lessons/00_tour.ipynb
    """

    def __init__(
        self, split: str = "train", size: str | int = "mini", seed: int = 0, root: str | Path | None = None, **filters
    ):
        super().__init__(render_nsynth_mini(root, size, seed), split, **filters)


def load_note(path: Path) -> torch.Tensor:
    """Read one NSynth wav as a float32 Tensor ``[1, 64000]``, or raise naming what is wrong with it.

    Lesson: lessons/00_tour.ipynb
    """
    x, file_sr = audio.load(path, mono=False)
    found = {"sample rate": file_sr, "channels": x.shape[0], "samples": x.shape[-1]}
    expected = {"sample rate": SR, "channels": 1, "samples": round(DURATION * SR)}
    wrong = [f"{k} {found[k]} (expected {expected[k]})" for k in expected if found[k] != expected[k]]
    if wrong:
        raise ValueError(
            f"{path} is not an NSynth note: {', '.join(wrong)}. NSynth notes are 4 s of 16 kHz mono audio: "
            f"convert it, e.g. `sox {path.name} -r 16000 -c 1 out.wav trim 0 4`, or re-render NSynth-mini."
        )
    return x


def _split_folder(root: Path, split: str) -> Path:
    how = (
        f"Download NSynth's json/wav archives from {NSYNTH_URL} and unpack them into {root}, "
        "or render NSynth-mini in the same format: NSynth(render_nsynth_mini(), split)."
    )
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not an NSynth split: use one of {SPLITS}.")
    if not root.is_dir():
        raise FileNotFoundError(f"NSynth folder {root} does not exist. {how}")
    folder = root / f"nsynth-{split}"
    if not folder.is_dir():
        found = sorted(p.name for p in root.glob("nsynth-*")) or "none"
        raise FileNotFoundError(f"{folder} does not exist (nsynth-* folders found in {root}: {found}). {how}")
    return folder


def _read_examples(path: Path) -> list[dict[str, Any]]:
    """The entries of an examples.json, sorted by note_str, each checked for the keys items need."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: re-extract the NSynth archive, or re-render NSynth-mini.")
    try:
        examples = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path} is corrupt ({err}): re-extract the NSynth archive, or re-render NSynth-mini."
        ) from err
    if not isinstance(examples, dict):
        raise ValueError(f"{path} holds a {type(examples).__name__}, not NSynth's {{note_str: metadata}} dict.")
    for name, entry in examples.items():
        missing = [key for key in ITEM_KEYS if key not in entry] if isinstance(entry, dict) else list(ITEM_KEYS)
        if missing:
            raise ValueError(f"{path}: entry {name!r} lacks {missing}; it is not in NSynth's format.")
    return [examples[name] for name in sorted(examples)]


def _present(examples: list[dict[str, Any]], audio_dir: Path) -> list[dict[str, Any]]:
    """Drop entries whose wav is missing, with one warning naming them."""
    on_disk = {p.name for p in audio_dir.glob("*.wav")}
    missing = [e["note_str"] + ".wav" for e in examples if e["note_str"] + ".wav" not in on_disk]
    if missing:
        warnings.warn(
            f"skipping {len(missing)} of {len(examples)} notes whose wav is missing from {audio_dir}: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
            stacklevel=3,
        )
    return [e for e in examples if e["note_str"] + ".wav" in on_disk]


def _note_filter(families, sources, pitch_range, velocities):
    """A predicate on examples.json entries that keeps the notes matching every filter given."""
    family_ids = _indices(families, FAMILIES, "families")
    source_ids = _indices(sources, SOURCES, "sources")
    if pitch_range is not None and not (len(pitch_range) == 2 and pitch_range[0] <= pitch_range[1]):
        raise ValueError(f"pitch_range={pitch_range} must be (low, high) MIDI keys with low <= high, e.g. (48, 72).")
    velocity_set = None if velocities is None else {int(v) for v in np.atleast_1d(velocities)}

    def keep(e: dict[str, Any]) -> bool:
        return (
            (family_ids is None or e["instrument_family"] in family_ids)
            and (source_ids is None or e["instrument_source"] in source_ids)
            and (pitch_range is None or pitch_range[0] <= e["pitch"] <= pitch_range[1])
            and (velocity_set is None or e["velocity"] in velocity_set)
        )

    return keep


def _indices(values, names: tuple[str, ...], argument: str) -> set[int] | None:
    """Names or indices of ``names`` as a set of indices; None stays None."""
    if values is None:
        return None
    indices = set()
    for value in [values] if isinstance(values, (str, int)) else values:
        index = names.index(value) if value in names else value
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < len(names):
            raise ValueError(f"{argument}: {value!r} is not one of {names} or an index 0-{len(names) - 1}.")
        indices.add(int(index))
    return indices


# ----------------------------------------------------------------------------- rendering
def render_nsynth_mini(root: str | Path | None = None, size: str | int = "mini", seed: int = 0) -> Path:
    """Render NSynth-mini in NSynth's format (once; later calls reuse the cache) and return its root.

    Each of the 79 instruments in ``INSTRUMENTS`` plays ``size`` notes drawn (by ``seed``) from its
    family's keys (``FAMILY_PITCHES``; fewer for a few programs whose other keys are out of tune)
    times the five ``VELOCITIES``: 4 s at 16 kHz, held 3 s then released, peak-normalised to 0.9.
    Within each family one instrument goes to test and one to valid (families of three or more;
    of two, one to test), the rest to train.

    Args:
        root: output folder; default ``config.data_dir() / "nsynth_mini-<size>-seed<seed>"``.
        size: ``"tiny"`` (2 notes per instrument, for tests), ``"mini"`` (20, 1,580 notes,
            the default) or ``"full"`` (every pitch and velocity: 16,035 notes, 2 GB),
            or a number of notes per instrument.
        seed: chooses the split and the notes.

    Returns:
        The root, holding ``nsynth-train``, ``nsynth-valid`` and ``nsynth-test``.

    Example:
        >>> root = render_nsynth_mini()     # about 2 s the first time (one core), then cached
        >>> NSynth(root, "valid")

    Lesson: lessons/00_tour.ipynb
    """
    n_notes = _notes_per_instrument(size)
    root = Path(root) if root is not None else config.data_dir() / f"nsynth_mini-{size}-seed{seed}"
    params = {
        "format": _FORMAT_VERSION,
        "notes_per_instrument": n_notes,
        "seed": seed,
        "instruments": [i.instrument_str for i in INSTRUMENTS],
        "pitches": FAMILY_PITCHES,
        "transpose": {str(k): v for k, v in TRANSPOSE.items()},
        "key_ranges": {str(k): v for k, v in KEY_RANGES.items()},
        "bad_keys": sorted(BAD_KEYS),
    }
    return cached_build(root, params, lambda tmp: _build(tmp, n_notes, seed))


def _notes_per_instrument(size: str | int) -> int | None:
    if isinstance(size, str) and size in SIZES:
        return SIZES[size]
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    raise ValueError(f"size={size!r}: use one of {list(SIZES)} or a positive number of notes per instrument.")


def split_instruments(instruments: Iterable[Instrument], seed: int) -> dict[str, list[Instrument]]:
    """Assign whole instruments to splits: per family, one to test and one to valid, the rest to train.

    A family of two instruments gives one to train and one to test; of one, it stays in train.

    Lesson: lessons/00_tour.ipynb
    """
    rng = np.random.default_rng(seed)
    splits: dict[str, list[Instrument]] = {split: [] for split in SPLITS}
    for family in FAMILIES:
        members = [i for i in instruments if i.family == family]
        members = [members[j] for j in rng.permutation(len(members))]
        held_out = ["test", "valid"][: len(members) - 1]
        for split, instrument in zip(held_out, members, strict=False):
            splits[split].append(instrument)
        splits["train"].extend(members[len(held_out) :])
    return {split: sorted(members) for split, members in splits.items()}


def _choose_notes(instrument: Instrument, n_notes: int | None, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n_notes`` distinct (pitch, velocity) pairs from the instrument's key range, sorted; all for None."""
    grid = [(p, v) for p in instrument.keys for v in VELOCITIES]
    if n_notes is None or n_notes >= len(grid):
        return grid
    return sorted(grid[j] for j in rng.choice(len(grid), n_notes, replace=False))


def _build(folder: Path, n_notes: int | None, seed: int) -> None:
    """Render every split into ``folder`` (called by ``cached_build`` with a temporary folder)."""
    rng = np.random.default_rng([seed, 1])  # a stream of its own, apart from the split's
    synth = SoundfontSynth(SR)
    note_ids = count()
    for split, instruments in split_instruments(INSTRUMENTS, seed).items():
        audio_dir = folder / f"nsynth-{split}" / "audio"
        audio_dir.mkdir(parents=True)
        examples = {}
        for instrument in instruments:
            for pitch, velocity in _choose_notes(instrument, n_notes, rng):
                entry = _render_example(synth, instrument, pitch, velocity, audio_dir)
                if entry is not None:
                    examples[entry["note_str"]] = {"note": next(note_ids), **entry}
        (audio_dir.parent / "examples.json").write_text(json.dumps(examples, indent=2))


def _render_example(
    synth: SoundfontSynth, instrument: Instrument, pitch: int, velocity: int, audio_dir: Path
) -> dict[str, Any] | None:
    """Render, check, normalise and save one note; return its examples.json entry (None if silent)."""
    note_str = f"{instrument.instrument_str}-{pitch:03d}-{velocity:03d}"
    key = pitch + TRANSPOSE.get(instrument.program, 0)
    x = synth.render_note(instrument.program, key, velocity, hold=HOLD, duration=DURATION)
    peak = float(np.abs(x).max())  # NaN or inf when any sample is
    if not math.isfinite(peak) or peak < 1e-4:
        warnings.warn(
            f"NSynth-mini: skipped {note_str}, the soundfont rendered it silent (peak {peak:.1e}).", stacklevel=2
        )
        return None
    _write_pcm16_wav(audio_dir / f"{note_str}.wav", x * np.float32(PEAK / peak), SR)
    return {
        "note_str": note_str,
        "pitch": pitch,
        "velocity": velocity,
        "instrument": instrument.program,
        "instrument_str": instrument.instrument_str,
        "instrument_family": FAMILIES.index(instrument.family),
        "instrument_family_str": instrument.family,
        "instrument_source": SOURCES.index(instrument.source),
        "instrument_source_str": instrument.source,
        "qualities": [0] * 10,  # NSynth-mini has no quality annotations
        "qualities_str": [],
        "sample_rate": SR,
    }


def _write_pcm16_wav(path: Path, x: np.ndarray, sr: int) -> None:
    """Write float32 ``x`` [samples] in [-1, 1) as a 16-bit mono wav, the bytes ``audio.save`` would write.

    soundfile (libsndfile 1.2) writes a 44-byte header and converts each sample through 32 bits,
    ``round(x * 2**31) >> 16``; so does this, a few times faster: no fsync per file and no
    temporary file (``cached_build`` already renders into a folder that it renames into place when
    complete). tests/test_nsynth.py checks that the bytes agree with soundfile's.
    """
    scaled = x * np.float32(2**31)  # exact: a power of two
    np.rint(scaled, out=scaled)  # round half to even, as lrintf
    pcm = (scaled.astype(np.int32) >> 16).astype("<i2")
    n_bytes = pcm.nbytes
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + n_bytes, b"WAVE", b"fmt ", 16, 1, 1, sr, 2 * sr, 2, 16, b"data", n_bytes
    )
    with open(path, "wb") as f:
        f.write(header)
        f.write(pcm.data)
