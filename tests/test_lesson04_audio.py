"""Lesson 04's audio evaluation (coursekit/recipes/spectrogram_audio.py) and the dB scale of SpectrogramFeatures."""

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from coursekit import audio, synth
from coursekit.checkpoints import load_checkpoint
from coursekit.data.nsynth import FAMILIES, NSynthMini
from coursekit.features import SpectrogramFeatures
from coursekit.models.spectrogram import build_spectrogram_ae
from coursekit.recipes.spectrogram_audio import (
    BOTTLENECK,
    SCALES,
    add_floor,
    crepe_pitch,
    high_band_db,
    judge_clips,
    loud_descriptors,
    nearest_key_notes,
    notes_by_key_band,
    pick_notes,
    reference_clips,
)

SR = 16000


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


def test_db_scale_known_values():
    features = SpectrogramFeatures(scale="db")
    for db, expected in ((-70.0, 0.0), (-40.0, 30 / 70), (-6.0, 64 / 70)):
        m = torch.tensor(10 ** (db / 20))
        value = (20 * torch.log10(m) - features.floor_db) / -features.floor_db
        assert float(value) == pytest.approx(expected, abs=1e-5)
    # a full-scale sine reads -6 dB in the features (see the class docstring): its peak bin near 64/70
    image = features.encode(synth.sine(1000.0, 2.0, SR))
    assert float(image.max()) == pytest.approx(64 / 70, abs=0.02)


def test_db_scale_round_trip_above_the_floor():
    features = SpectrogramFeatures(scale="db")
    x = synth.pluck(220.0, 2.0, SR)
    image = features.encode(x)
    mag = features.to_magnitude(image)[..., :256, :] / features.reference
    reference = SpectrogramFeatures(mu=8.0).to_magnitude(SpectrogramFeatures(mu=8.0).encode(x))[..., :256, :]
    reference = reference / features.reference
    loud = reference > features.floor * 10 ** (1 / 20)  # 1 dB above the floor and up: restored exactly
    assert torch.allclose(mag[loud], reference[loud], rtol=1e-3)
    assert (mag[reference == 0] == 0).all()


def test_db_scale_near_zero_output_is_silence():
    features = SpectrogramFeatures(scale="db")
    small = torch.full(features.shape, 0.5 / 70)  # half a dB above the floor: treated as silence
    assert float(features.to_magnitude(small).abs().max()) == 0.0


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="scale='log'.*'mu_law'"):
        SpectrogramFeatures(scale="log")


def test_scales_change_one_setting_only():
    default = SpectrogramFeatures().to_dict()
    for features in SCALES.values():
        changed = {k for k, v in features.to_dict().items() if v != default[k]}
        assert len(changed) <= 1 and changed <= {"mu", "scale"}


def test_the_bottleneck_runs_change_only_the_code_size():
    for name, (base_name, code_dim) in BOTTLENECK.items():
        _, base = load_checkpoint(f"checkpoints/{base_name}.pt", build_spectrogram_ae)
        model, run = load_checkpoint(f"checkpoints/{name}.pt", build_spectrogram_ae)
        same = {key: value for key, value in base["config"].items() if key != "features"}  # spec_ae_nsynth predates it
        assert {key: run["config"][key] for key in same} == same | {"code_dim": code_dim} != same
        assert run["metrics"]["epochs_run"] == base["metrics"]["epochs_run"]
        matrices = [tuple(w.shape) for w in model.state_dict().values() if w.dim() == 2]  # into and out of the code
        assert matrices == [(code_dim, 8192), (8192, code_dim)]


def test_high_band_db_on_sines_and_noise(rng):
    low, high = synth.sine(1000.0, 1.0, SR)[None], synth.sine(6000.0, 1.0, SR)[None]
    noise = torch.rand(1, SR, generator=rng) * 2 - 1
    values = high_band_db(torch.stack([low, high, noise]), SR)
    assert values.shape == (3,)
    assert float(values[0]) < -50  # a 1 kHz sine: only the Hann window's leakage reaches above 4 kHz
    assert float(values[1]) > -0.5  # a 6 kHz sine has everything there
    assert float(values[2]) == pytest.approx(10 * math.log10(0.5), abs=0.5)  # white noise: half the band


def test_high_band_db_refuses_a_band_outside_the_spectrum():
    with pytest.raises(ValueError, match="above_hz=9000"):
        high_band_db(torch.zeros(1, 1, SR), SR, above_hz=9000)


def test_loud_descriptors_tone_noise_and_silent_tail(rng):
    tone = synth.sine(500.0, 1.0, SR)[None]
    tone_then_silence = torch.cat([tone, torch.zeros(1, SR)], dim=-1)
    noise = torch.rand(1, 2 * SR, generator=rng) * 2 - 1
    d = loud_descriptors(torch.stack([torch.cat([tone, tone], dim=-1), tone_then_silence, noise]), SR)
    assert float(d["centroid"][0]) == pytest.approx(500, rel=0.1)
    assert float(d["flatness"][0]) < 0.01 < float(d["flatness"][2])
    assert float(d["flatness"][2]) == pytest.approx(0.56, abs=0.1)  # exp(-Euler's gamma) for white noise power
    assert float(d["centroid"][1]) == pytest.approx(float(d["centroid"][0]), rel=0.05)  # the silence is not counted


def test_crepe_pitch_of_a_sine_and_of_noise(rng):
    sine = synth.sine(440.0, 1.0, SR)[None]
    noise = (torch.rand(1, SR, generator=rng) * 2 - 1) * 0.5
    result = crepe_pitch(torch.stack([sine, noise]))
    assert float(result["midi"][0]) == pytest.approx(69.0, abs=0.3)
    assert float(result["periodicity"][0]) > 0.8 > 0.3 > float(result["periodicity"][1])


def test_judge_clips_against_itself_and_a_shifted_octave():
    reference = torch.stack([synth.sine(220.0, 1.0, SR)[None], synth.sine(330.0, 1.0, SR)[None]])
    octave = torch.stack([synth.sine(440.0, 1.0, SR)[None], synth.sine(660.0, 1.0, SR)[None]])
    judged = judge_clips({"reference": reference, "copy": reference.clone(), "octave": octave,
                          "other": reference.roll(1, dims=0)}, [57, 64], SR)  # fmt: skip
    assert torch.allclose(judged["copy"]["mrstft"], torch.zeros(2), atol=1e-5)
    assert judged["copy"]["kept"].tolist() == [1.0, 1.0]
    assert judged["octave"]["kept"].tolist() == [0.0, 0.0]
    assert (judged["octave"]["mrstft"] > 0.5).all()
    assert set(judged["other"]) == {"mrstft"}  # distance only: its pitch is known


def test_add_floor_is_one_noise_at_the_asked_level():
    clips = torch.zeros(3, 1, SR)
    floored = add_floor(clips, -40.0)
    assert torch.equal(floored[0], floored[2])  # the same noise under every clip
    rms_db = 20 * math.log10(float(floored[0].pow(2).mean().sqrt()))
    assert rms_db == pytest.approx(-40.0, abs=0.2)
    assert torch.equal(add_floor(clips, -40.0), floored)  # seeded: the same on every call
    with pytest.raises(ValueError, match="floor_db=3"):
        add_floor(clips, 3.0)


def test_judge_floor_ignores_an_inaudible_difference_and_keeps_an_audible_one():
    torch.manual_seed(0)
    pluck = synth.pluck(220.0, 2.0, SR)[None]
    sixteen_bit = torch.round(pluck * 32767) / 32767  # differs only about 100 dB down
    pluck, sixteen_bit = audio.rms_normalize(pluck, -20.0), audio.rms_normalize(sixteen_bit, -20.0)
    octave = audio.rms_normalize(synth.pluck(440.0, 2.0, SR)[None], -20.0)
    clips = {"reference": pluck[None], "copy": sixteen_bit[None], "octave": octave[None]}
    bare = judge_clips(clips, [57], SR, floor_db=None)
    floored = judge_clips(clips, [57], SR)
    assert float(bare["copy"]["mrstft"]) > 0.3  # the bare log-magnitude term hears the quantisation
    assert float(floored["copy"]["mrstft"]) < 0.1
    assert float(floored["octave"]["mrstft"]) > 1.0  # a real difference still counts


def test_judge_clips_marks_unheard_originals_as_nan():
    reference = torch.stack([synth.sine(220.0, 1.0, SR)[None], synth.sine(330.0, 1.0, SR)[None]])
    judged = judge_clips({"reference": reference}, [57, 40], SR)  # the second is not at key 40
    assert judged["reference"]["kept"][0] == 1.0 and torch.isnan(judged["reference"]["kept"][1])


def test_judge_clips_errors():
    reference = torch.zeros(2, 1, SR)
    with pytest.raises(ValueError, match="one MIDI key per clip"):
        judge_clips({"reference": reference}, [60], SR)
    with pytest.raises(ValueError, match="need a 'reference'"):
        judge_clips({"copy": reference}, [60, 61], SR)
    with pytest.raises(ValueError, match="one shape"):
        judge_clips({"reference": reference, "short": torch.zeros(2, 1, 100)}, [60, 61], SR)


def test_pick_notes_one_family_after_another_with_distinct_keys():
    notes = NSynthMini("test", size="tiny")
    chosen = pick_notes(notes, per_family=2)
    families = [notes.examples[i]["instrument_family_str"] for i in chosen]
    present = [f for f in FAMILIES if f in families]
    assert families == [f for f in present for _ in range(families.count(f))]  # grouped, in FAMILIES order
    for family in present:
        keys = [notes.examples[i]["pitch"] for i, f in zip(chosen, families, strict=True) if f == family]
        assert len(keys) == len(set(keys))
    with pytest.raises(ValueError, match="per_family=0"):
        pick_notes(notes, per_family=0)


def test_nearest_key_notes_same_instrument_another_key_lower_on_a_tie():
    notes = NSynthMini("test", size="mini")
    examples = notes.examples
    chosen = pick_notes(notes)
    keys = [e["pitch"] for e in examples]
    for i, j in zip(chosen, nearest_key_notes(notes, chosen), strict=True):
        same = [k for k, e in zip(keys, examples, strict=True) if e["instrument_str"] == examples[i]["instrument_str"]]
        assert examples[j]["instrument_str"] == examples[i]["instrument_str"] and keys[j] != keys[i]
        assert abs(keys[j] - keys[i]) == min(abs(k - keys[i]) for k in same if k != keys[i])
    tiny = NSynthMini("test", size="tiny")  # 2 notes per instrument: the neighbour is the other one, if its key differs
    owner = {i: e["instrument_str"] for i, e in enumerate(tiny.examples)}
    first = next(i for i in owner if len({tiny.examples[j]["pitch"] for j in owner if owner[j] == owner[i]}) == 2)
    other = next(j for j in owner if j != first and owner[j] == owner[first])
    assert nearest_key_notes(tiny, [first]) == [other]
    alone = SimpleNamespace(examples=[{"instrument_str": "x", "pitch": 60}, {"instrument_str": "x", "pitch": 60}])
    with pytest.raises(ValueError, match="x has no note at a key other than 60"):
        nearest_key_notes(alone, [0])


def test_notes_by_key_band_spans_each_band_from_its_lowest_key_to_its_highest():
    notes = NSynthMini("test", size="tiny")
    keys = [int(e["pitch"]) for e in notes.examples]
    edges = [0, 48, 60, 128]
    bands = notes_by_key_band(notes, edges, per_band=3)
    assert list(bands) == [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(edges) if any(lo <= k < hi for k in keys)]
    for name, chosen in bands.items():
        lo, last = map(int, name.split("-"))
        in_band = [k for k in keys if lo <= k <= last]
        assert len(chosen) == min(3, len(in_band)) == len(set(chosen))
        chosen_keys = [keys[i] for i in chosen]
        assert chosen_keys == sorted(chosen_keys)
        assert chosen_keys[0] == min(in_band) and chosen_keys[-1] == max(in_band)
    assert sum(map(len, bands.values())) > 0
    with pytest.raises(ValueError, match="increasing"):
        notes_by_key_band(notes, [60, 48], per_band=3)


def test_reference_clips_cut_or_pad_and_peak_at_one():
    notes = NSynthMini("test", size="tiny")
    clips = reference_clips(notes, [0, 1], 24000)
    assert clips.shape == (2, 1, 24000)
    assert torch.allclose(clips.abs().amax(dim=-1), torch.ones(2, 1))
    first = notes[0]["audio"][..., :24000]
    assert torch.allclose(clips[0], first / first.abs().max())  # the note's own first 1.5 s, scaled
    longer = reference_clips(notes, [0], 80000)
    assert longer.shape == (1, 1, 80000) and longer[0, 0, 64000:].abs().max() == 0  # 4-s notes padded with silence
