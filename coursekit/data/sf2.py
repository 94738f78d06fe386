"""Which recorded samples each program of a SoundFont 2 file plays: the preset -> instrument -> sample map.

A SoundFont 2 (SF2) file is a RIFF file (``RIFF <size> sfbk``) holding the samples (``sdta``) and,
in its ``pdta`` list, nine tables that say how presets use them (SoundFont 2.04 specification,
section 7): ``phdr`` (presets: name, program, bank, first zone) -> ``pbag``/``pgen`` (a preset's
zones: key and velocity ranges, and which instrument) -> ``inst`` -> ``ibag``/``igen`` (an
instrument's zones: key and velocity ranges, and which sample) -> ``shdr`` (sample headers). This
module reads those tables with ``struct`` (tinysoundfont plays the file but exposes only preset
names) and answers one question: which samples can a program sound, over all keys or only some?
Two General MIDI programs built from the same samples replay the same recordings, whatever their
names, envelopes or filters; that is what a split by program cannot see.

Example:
    >>> from coursekit.data.soundfont import soundfont_path
    >>> layout = read_sf2(soundfont_path())
    >>> layout.preset_names[(0, 44)], layout.samples(44) <= layout.samples(48)   # tremolo strings
    ('Strings (Tremelo)', True)

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from coursekit.data.instruments import INSTRUMENTS
from coursekit.data.nsynth import VELOCITIES

# Generator operators used here (SoundFont 2.04, section 8.1.2).
INSTRUMENT, KEY_RANGE, VELOCITY_RANGE, SAMPLE_ID = 41, 43, 44, 53
FULL = (0, 127)  # a zone with no key (or velocity) range covers every key (velocity)
_TABLES = {  # pdta sub-chunk -> (record format, record size in bytes)
    "phdr": ("<20sHHHIII", 38),
    "pbag": ("<HH", 4),
    "pgen": ("<HH", 4),
    "inst": ("<20sH", 22),
    "ibag": ("<HH", 4),
    "igen": ("<HH", 4),
    "shdr": ("<20sIIIIIBbHH", 46),
}


@dataclass(frozen=True)
class Zone:
    """One sample as a preset reaches it: the sample's index in ``shdr`` and the keys and velocities
    (MIDI, inclusive) on which it sounds, the preset zone's ranges intersected with the instrument zone's."""

    sample: int
    keys: tuple[int, int]
    velocities: tuple[int, int]


@dataclass(frozen=True)
class SoundFontLayout:
    """What an SF2 file's presets play.

    ``preset_names`` and ``zones`` are keyed by ``(bank, program)`` (program 0-based; General MIDI
    melodic programs are bank 0, drum kits bank 128); ``sample_names[i]`` names sample ``i``.
    """

    preset_names: dict[tuple[int, int], str]
    sample_names: tuple[str, ...]
    zones: dict[tuple[int, int], tuple[Zone, ...]]

    def samples(
        self, program: int, bank: int = 0, keys: Iterable[int] | None = None, velocities: Iterable[int] | None = None
    ) -> frozenset[int]:
        """The indices of the samples that ``program`` sounds on any of ``keys`` at any of ``velocities``
        (MIDI numbers; None: all). Raises KeyError, naming the bank, when the file has no such preset."""
        if (bank, program) not in self.zones:
            raise KeyError(f"no preset for program {program} in bank {bank} of this soundfont")
        key_set = None if keys is None else set(keys)
        velocity_set = None if velocities is None else set(velocities)

        def reaches(wanted: set[int] | None, span: tuple[int, int]) -> bool:
            return wanted is None or any(span[0] <= k <= span[1] for k in wanted)

        return frozenset(
            z.sample
            for z in self.zones[(bank, program)]
            if reaches(key_set, z.keys) and reaches(velocity_set, z.velocities)
        )


def read_sf2(path: str | Path) -> SoundFontLayout:
    """Read the preset -> instrument -> sample map of the SF2 file at ``path`` (the sample data is skipped).

    Raises:
        ValueError: the file is not a RIFF ``sfbk`` file, or its ``pdta`` list or one of its nine tables
            is missing or cut short (the message names which).

    Lesson: lessons/00_tour.ipynb
    """
    tables = _read_tables(Path(path))
    shdr = tables["shdr"][:-1]  # every table ends with a terminal record ("EOP", "EOI", "EOS")
    sample_names = tuple(_name(record[0]) for record in shdr)
    instrument_zones = [_instrument_zones(tables, i, len(sample_names)) for i in range(len(tables["inst"]) - 1)]
    preset_names: dict[tuple[int, int], str] = {}
    zones: dict[tuple[int, int], tuple[Zone, ...]] = {}
    phdr = tables["phdr"]
    for i in range(len(phdr) - 1):
        name, program, bank, first_bag = phdr[i][:4]
        reached = []
        for gens, is_global_default in _zones(tables["pbag"], tables["pgen"], first_bag, phdr[i + 1][3], INSTRUMENT):
            if is_global_default:
                continue
            keys, velocities = gens.get(KEY_RANGE, FULL), gens.get(VELOCITY_RANGE, FULL)
            for zone in instrument_zones[gens[INSTRUMENT]]:
                k, v = _overlap(keys, zone.keys), _overlap(velocities, zone.velocities)
                if k and v:
                    reached.append(Zone(zone.sample, k, v))
        preset_names[(bank, program)] = _name(name)
        zones[(bank, program)] = tuple(reached)
    return SoundFontLayout(preset_names, sample_names, zones)


def shared_samples(
    held_out: dict[int, frozenset[int]], train: dict[int, frozenset[int]]
) -> dict[int, tuple[float, tuple[int, ...]]]:
    """For each held-out program: the share (0-1) of its samples that some training program also
    sounds, and those training programs (sorted). Both arguments map a program to the samples it
    sounds, e.g. ``{p: layout.samples(p, keys=...)}``; a held-out program sounding no sample scores 0.

    Lesson: lessons/00_tour.ipynb
    """
    heard = frozenset().union(*train.values()) if train else frozenset()
    result = {}
    for program, samples in held_out.items():
        share = len(samples & heard) / len(samples) if samples else 0.0
        result[program] = (share, tuple(sorted(p for p, s in train.items() if s & samples)))
    return result


def replaying_programs(layout: SoundFontLayout, held_out: Iterable[int], train: Iterable[int]) -> set[int]:
    """The programs of ``held_out`` whose every sample some program of ``train`` also sounds, each program
    taken on the keys and velocities NSynth-mini plays it at (lesson 00's check 2, which lesson 04 reuses).

    Raises KeyError for a program that is not one of NSynth-mini's (``coursekit.data.instruments.INSTRUMENTS``).

    Lesson: lessons/00_tour.ipynb
    """
    by_program = {i.program: i for i in INSTRUMENTS}

    def sounded(program: int) -> frozenset[int]:
        if program not in by_program:
            raise KeyError(f"program {program} is not one of NSynth-mini's (see coursekit.data.instruments)")
        return layout.samples(program, keys=by_program[program].sounding_keys, velocities=VELOCITIES)

    shares = shared_samples({p: sounded(p) for p in held_out}, {p: sounded(p) for p in train})
    return {p for p, (share, _) in shares.items() if share == 1}


# ----------------------------------------------------------------------------- parsing
def _read_tables(path: Path) -> dict[str, list[tuple]]:
    """The nine ``pdta`` tables of an SF2 file, each a list of unpacked records (terminal record included)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
            raise ValueError(
                f"{path} is not a SoundFont 2 file: it starts with {head[:12]!r}, where an SF2 file starts "
                "with b'RIFF', a 4-byte size and b'sfbk'."
            )
        while True:
            header = f.read(12)
            if len(header) < 12:
                raise ValueError(f"{path} has no 'pdta' list: it is not a complete SoundFont 2 file.")
            chunk_id, size, list_type = header[:4], struct.unpack("<I", header[4:8])[0], header[8:12]
            if chunk_id == b"LIST" and list_type == b"pdta":
                data = f.read(size - 4)
                break
            f.seek(size - 4 + (size & 1), 1)  # skip this chunk (and its pad byte) without reading it
    tables: dict[str, list[tuple]] = {}
    offset = 0
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4].decode("latin-1"), struct.unpack_from("<I", data, offset + 4)[0]
        if chunk_id in _TABLES:
            fmt, record = _TABLES[chunk_id]
            if size % record:
                raise ValueError(f"{path}: its '{chunk_id}' table is {size} bytes, not a multiple of {record}.")
            tables[chunk_id] = list(struct.iter_unpack(fmt, data[offset + 8 : offset + 8 + size]))
        offset += 8 + size + (size & 1)
    missing = [name for name in _TABLES if len(tables.get(name, [])) < 1]
    if missing:
        raise ValueError(f"{path}: the 'pdta' list lacks its {', '.join(missing)} table(s).")
    return tables


def _zones(bags: list[tuple], gens: list[tuple], first: int, end: int, target: int):
    """Yield ``(generators, is_global)`` for the zones ``first..end-1``: generators as {operator: value},
    ranges as ``(low, high)``; a zone without the ``target`` generator (instrument or sample) is a global
    zone, whose ranges (when it is the first zone) are the defaults of the others."""
    defaults: dict[int, object] = {}
    for b in range(first, end):
        found: dict[int, object] = {}
        for operator, amount in gens[bags[b][0] : bags[b + 1][0]]:
            found[operator] = (amount & 0xFF, amount >> 8) if operator in (KEY_RANGE, VELOCITY_RANGE) else amount
        if target not in found:
            if b == first:
                defaults = found
            yield found, True
            continue
        yield {**defaults, **found}, False


def _instrument_zones(tables: dict[str, list[tuple]], i: int, n_samples: int) -> list[Zone]:
    first, end = tables["inst"][i][1], tables["inst"][i + 1][1]
    zones = []
    for gens, is_global in _zones(tables["ibag"], tables["igen"], first, end, SAMPLE_ID):
        if not is_global and gens[SAMPLE_ID] < n_samples:
            zones.append(Zone(gens[SAMPLE_ID], gens.get(KEY_RANGE, FULL), gens.get(VELOCITY_RANGE, FULL)))
    return zones


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int] | None:
    low, high = max(a[0], b[0]), min(a[1], b[1])
    return (low, high) if low <= high else None


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()
