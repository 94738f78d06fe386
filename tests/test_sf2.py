"""coursekit.data.sf2: the preset -> instrument -> sample map of a SoundFont 2 file."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import tinysoundfont

from coursekit.data.instruments import INSTRUMENTS
from coursekit.data.nsynth import split_instruments
from coursekit.data.sf2 import read_sf2, replaying_programs, shared_samples
from coursekit.data.soundfont import soundfont_path


def chunk(chunk_id: bytes, data: bytes) -> bytes:
    return chunk_id + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def riff_list(list_type: bytes, *chunks: bytes) -> bytes:
    return chunk(b"LIST", list_type + b"".join(chunks))


def gens(*pairs: tuple[int, int]) -> list[bytes]:
    return [struct.pack("<HH", op, amount) for op, amount in pairs]


def key_range(low: int, high: int) -> tuple[int, int]:
    return 43, low | high << 8


@pytest.fixture
def toy_sf2(tmp_path: Path) -> Path:
    """A SoundFont 2 file written by hand, whose map is known.

    Samples A (0), B (1), C (2). Instrument 0 "Two": a global zone of keys 0-60, then sample A (those keys)
    and sample B (keys 61-127). Instrument 1 "One": sample C on every key. Preset "Both" (bank 0, program 5):
    instrument 0 on keys 0-70 and instrument 1 on keys 100-127. Preset "Kit" (bank 128, program 0): instrument 1.
    """
    n = 64  # points per sample, followed by the 46 zero points the specification asks for
    smpl = b"".join(struct.pack(f"<{n}h", *[(i * 300 * (s + 1)) % 8000 for i in range(n)]) + b"\0" * 92
                    for s in range(3))  # fmt: skip
    shdr = b"".join(
        struct.pack("<20sIIIIIBbHH", name, s * (n + 46), s * (n + 46) + n, s * (n + 46) + 8, s * (n + 46) + n - 8,
                    16000, 60, 0, 0, 1)
        for s, name in enumerate([b"A", b"B", b"C"])
    ) + struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)  # fmt: skip
    igen = gens(key_range(0, 60), (53, 0), key_range(61, 127), (53, 1), (53, 2))
    ibag = [(0, 0), (1, 0), (2, 0), (4, 0), (5, 0)]  # zones: global, A, B | C | terminal
    inst = [(b"Two", 0), (b"One", 3), (b"EOI", 4)]
    pgen = gens(key_range(0, 70), (41, 0), key_range(100, 127), (41, 1), (41, 1))
    pbag = [(0, 0), (2, 0), (4, 0), (5, 0)]  # zones: Both (2) | Kit (1) | terminal
    phdr = [(b"Both", 5, 0, 0), (b"Kit", 0, 128, 2), (b"EOP", 0, 0, 3)]
    pdta = riff_list(
        b"pdta",
        chunk(b"phdr", b"".join(struct.pack("<20sHHHIII", name, p, b, bag, 0, 0, 0) for name, p, b, bag in phdr)),
        chunk(b"pbag", b"".join(struct.pack("<HH", *bag) for bag in pbag)),
        chunk(b"pmod", b"\0" * 10),
        chunk(b"pgen", b"".join(pgen) + b"\0" * 4),
        chunk(b"inst", b"".join(struct.pack("<20sH", name, bag) for name, bag in inst)),
        chunk(b"ibag", b"".join(struct.pack("<HH", *bag) for bag in ibag)),
        chunk(b"imod", b"\0" * 10),
        chunk(b"igen", b"".join(igen) + b"\0" * 4),
        chunk(b"shdr", shdr),
    )
    info = riff_list(b"INFO", chunk(b"ifil", struct.pack("<HH", 2, 1)), chunk(b"INAM", b"toy\0"))
    body = b"sfbk" + info + riff_list(b"sdta", chunk(b"smpl", smpl)) + pdta
    path = tmp_path / "toy.sf2"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_a_hand_written_file_reads_as_written(toy_sf2):
    synth = tinysoundfont.Synth()  # an independent reader accepts the file and agrees on the presets
    sfid = synth.sfload(str(toy_sf2))
    assert synth.sfpreset_name(sfid, 0, 5) == "Both" and synth.sfpreset_name(sfid, 128, 0) == "Kit"
    layout = read_sf2(toy_sf2)
    assert layout.preset_names == {(0, 5): "Both", (128, 0): "Kit"}
    assert layout.sample_names == ("A", "B", "C")
    assert layout.samples(5) == {0, 1, 2}
    assert layout.samples(5, keys=[50]) == {0}  # the instrument's global zone limits A to keys 0-60
    assert layout.samples(5, keys=[65]) == {1}  # the preset zone cuts B off above key 70
    assert layout.samples(5, keys=[80, 90]) == set()
    assert layout.samples(5, keys=[60, 61, 120]) == {0, 1, 2}
    assert layout.samples(5, keys=[50], velocities=[1, 127]) == {0}
    assert layout.samples(0, bank=128) == {2}
    with pytest.raises(KeyError, match="no preset for program 6 in bank 0"):
        layout.samples(6)


def test_the_course_soundfont_names_every_program_as_tinysoundfont_does():
    layout = read_sf2(soundfont_path())
    synth = tinysoundfont.Synth()
    sfid = synth.sfload(str(soundfont_path()))
    for program in range(128):
        assert layout.preset_names[(0, program)] == synth.sfpreset_name(sfid, 0, program)
    assert layout.preset_names[(0, 0)] == "Piano 1" and layout.preset_names[(0, 44)] == "Strings (Tremelo)"
    assert all(layout.samples(program) for program in range(128)), "every GM program plays some sample"


def test_programs_that_replay_other_programs_samples():
    """Facts found by an independent parse (data/notes/coldread/00.md): these programs play only samples of others."""
    layout = read_sf2(soundfont_path())
    assert layout.samples(44) <= layout.samples(48) and len(layout.samples(44)) == 9  # tremolo strings in strings
    assert layout.samples(54) <= layout.samples(53) and len(layout.samples(54)) == 3  # synth vox in voice oohs
    assert layout.samples(3) <= layout.samples(0) | layout.samples(1)  # honky-tonk in pianos 1 and 2
    assert {layout.sample_names[s] for s in layout.samples(0)} >= {"Piano C5", "Piano Db3"}
    assert not layout.samples(73) & layout.samples(0)  # flute and piano share nothing


def test_shared_samples_counts_share_and_names_the_programs():
    held_out = {10: frozenset({1, 2, 3, 4}), 11: frozenset({9}), 12: frozenset()}
    train = {0: frozenset({1, 2}), 1: frozenset({2, 3, 7}), 2: frozenset({8})}
    assert shared_samples(held_out, train) == {10: (0.75, (0, 1)), 11: (0.0, ()), 12: (0.0, ())}
    assert shared_samples(held_out, {}) == {10: (0.0, ()), 11: (0.0, ()), 12: (0.0, ())}


def test_replaying_programs_finds_the_test_programs_lesson_00_names():
    """Lesson 00's check 2 on NSynth-mini's programs: 3, 44, 54 and 83 sound only training programs' samples."""
    layout = read_sf2(soundfont_path())
    train = [i.program for i in split_instruments(INSTRUMENTS, seed=0)["train"]]
    test = [i.program for i in split_instruments(INSTRUMENTS, seed=0)["test"]]
    assert replaying_programs(layout, test, train) == {3, 44, 54, 83}
    assert replaying_programs(layout, [44, 73], [48]) == {44}  # tremolo strings replay strings; flute does not
    assert replaying_programs(layout, [44], []) == set()
    with pytest.raises(KeyError, match="program 19 is not one of NSynth-mini's"):
        replaying_programs(layout, [19], train)  # church organ: left out of NSynth-mini


def test_a_file_that_is_not_a_soundfont_is_named(tmp_path, toy_sf2):
    wav = tmp_path / "note.wav"
    wav.write_bytes(b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + b"\0" * 28)
    with pytest.raises(
        ValueError, match=r"note.wav is not a SoundFont 2 file: it starts with b'RIFF\$\\x00\\x00\\x00WAVE'"
    ):
        read_sf2(wav)
    cut = tmp_path / "cut.sf2"
    cut.write_bytes(toy_sf2.read_bytes()[:300])  # the header and the sample data, no pdta
    with pytest.raises(ValueError, match="cut.sf2 has no 'pdta' list"):
        read_sf2(cut)
    no_shdr = tmp_path / "no_shdr.sf2"
    no_shdr.write_bytes(toy_sf2.read_bytes().replace(b"shdr", b"xxxx"))
    with pytest.raises(ValueError, match="lacks its shdr table"):
        read_sf2(no_shdr)
