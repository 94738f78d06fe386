"""coursekit.recipes.waveform_vae and latent_vae: lesson 05's and 06's data, training by the clock, and
measurements (held-out material, marks, kept reconstructions, trajectories)."""

from __future__ import annotations

import pytest
import torch

from coursekit.metrics import roughness
from coursekit.models.audio_vae import AudioVAEConfig, AudioVAELoss
from coursekit.models.latent_vae import LatentVAEConfig
from coursekit.recipes.latent_vae import describe_latent_vae, loop_trajectories, train_latent_vae
from coursekit.recipes.waveform_vae import listen_audio, reconstruct, train_waveform_vae, waveform_clips

TINY = AudioVAEConfig(bands=4, strides=(2, 2, 8), channels=(8, 8, 16), latent_channels=4, dilations=(1,))


@pytest.fixture(scope="module")
def clips():
    return waveform_clips("tiny", train_loops=2)


def test_clips_keep_test_material_apart_and_scale_every_clip_to_a_peak_of_0_9(clips):
    assert clips["train"].shape[1:] == (1, 24000) and clips["test_loops"].shape[1:] == (1, 16000)
    assert len(clips["test_pitches"]) == len(clips["test_notes"]) and len(clips["test_loops"]) == 64
    for key in ("train", "valid", "test_notes", "test_loops"):
        peaks = clips[key].abs().amax(dim=(1, 2))
        torch.testing.assert_close(peaks, torch.full_like(peaks, 0.9))
    flat = clips["train"][:, 0, :16000]
    assert not any(torch.equal(flat[i], t[0]) for t in clips["test_loops"] for i in range(len(flat)))


def test_training_by_the_clock_measures_at_each_mark_and_keeps_what_it_heard(clips):
    loss = AudioVAELoss("kl", 0.01, warmup_steps=2)
    model, metrics = train_waveform_vae(TINY, minutes=0.06, marks=(0.02,), loss=loss, clips=clips,
                                        measure_pitch=False, live_plot=False, progress=False)  # fmt: skip
    marks = metrics["marks"]
    assert [m["minutes"] >= target for m, target in zip(marks, (0.02, 0.06), strict=True)] == [True, True]
    assert 0 < marks[0]["steps"] < marks[1]["steps"] and all(0 < m["ratio_notes"] < 3 for m in marks)
    assert list(metrics["listen"]) == ["0.02", "0.06"]
    heard = listen_audio(metrics, "0.06", "loop")
    expected = reconstruct(model, clips["test_loops"][:1])[0]
    assert heard.shape == (1, 16000) and float((heard - expected).abs().max()) < 1 / 32767 + 1e-6
    assert metrics["loss"] == {"regulariser": "kl", "weight": 0.01, "warmup_steps": 2, "reconstruction": "spectral"}
    assert [e["steps"] for e in metrics["history"]] == sorted(e["steps"] for e in metrics["history"])
    assert "pitch_kept" not in metrics  # measured only when asked (CREPE on every test note takes a while)


def test_a_mark_already_passed_by_the_last_validation_trains_one_step(clips):
    # 6 ms between the marks: validating at the first mark takes longer than that
    _, metrics = train_waveform_vae(TINY, minutes=0.0011, marks=(0.001,), clips=clips,
                                    measure_pitch=False, live_plot=False, progress=False)  # fmt: skip
    first, second = metrics["marks"]
    assert second["steps"] == first["steps"] + 1 and second["minutes"] >= 0.0011


def test_a_step_budget_stops_training_at_that_step_whatever_the_clock(clips):
    _, metrics = train_waveform_vae(TINY, minutes=60.0, marks=(0.001,), clips=clips, max_steps=7,
                                    measure_pitch=False, live_plot=False, progress=False)  # fmt: skip
    assert metrics["marks"][-1]["steps"] == 7 and metrics["history"][-1]["steps"] == 7


def test_trajectories_and_a_short_latent_vae_run_measure_what_they_say():
    first = torch.nn.Module()  # stands in for lesson 05's model: encode and a config with the compression
    first.config = AudioVAEConfig(bands=16, strides=(2, 2, 2))
    first.encode = lambda x: (x.view(len(x), 128, -1)[:, :4], torch.zeros(len(x), 4, x.shape[-1] // 128))
    data = loop_trajectories(first, 3, seed=1, frames=32)
    assert data["mu"].shape == data["logvar"].shape == (3, 4, 32) and data["bpm"].shape == (3,)
    assert roughness(torch.arange(5.0)) == 1.0 and roughness(torch.ones(2, 7)) == 0.0
    model, metrics = train_latent_vae(data, LatentVAEConfig(in_channels=4, frames=32, points=2, width=8),
                                      epochs=3, valid=data, live_plot=False, progress=False)  # fmt: skip
    assert metrics["objective"] == "posterior" and metrics["train_loops"] == 3
    assert metrics == metrics | {k: pytest.approx(v, abs=1e-5) for k, v in
                                 describe_latent_vae(model, data, "posterior").items()}  # fmt: skip


# ----------------------------------------------------------------------------- shipped checkpoints
def test_the_shipped_waveform_vae_is_small_verified_and_reproduces_its_recorded_loop_ratio(clips):
    from coursekit import checkpoints, config
    from coursekit.metrics import random_other_ratio
    from coursekit.models.audio_vae import build_audio_vae

    entry = checkpoints.list_pretrained()["waveform_vae"]
    assert (config.checkpoint_dir() / entry["file"]).stat().st_size == entry["size_bytes"] < 10 * 2**20
    model, ckpt = checkpoints.load_pretrained("waveform_vae", build_audio_vae)
    assert model.config == AudioVAEConfig() and ckpt["metrics"]["train_minutes"] <= 15.1
    recorded = ckpt["metrics"]["marks"][-1]
    loops = clips["test_loops"]  # the held-out loops do not depend on the NSynth size
    measured = random_other_ratio(reconstruct(model, loops), loops)
    assert measured == pytest.approx(recorded["ratio_loops"], abs=2e-3)
    assert measured < recorded["ratio_notes"] < 0.7  # trained: silence scores about 1.6


def test_the_shipped_latent_vaes_reproduce_their_recorded_held_out_figures():
    """The trade-off lesson 06 teaches, re-measured on the 64 held-out loops the recipes scored them on."""
    from coursekit import checkpoints
    from coursekit.models.latent_vae import build_latent_vae
    from coursekit.recipes.latent_vae import POINTS, TEST_LOOPS, load_waveform_vae

    test = loop_trajectories(load_waveform_vae(ship=True), TEST_LOOPS, seed=1)
    explained = {}
    for points in POINTS:
        entry = checkpoints.list_pretrained()[f"latent_vae_p{points}"]
        assert entry["size_bytes"] < 10 * 2**20
        model, ckpt = checkpoints.load_pretrained(f"latent_vae_p{points}", build_latent_vae)
        measured = describe_latent_vae(model, test, "posterior")
        assert measured["mse"] == pytest.approx(ckpt["metrics"]["mse"], abs=1e-3)
        explained[points] = measured["explained"]
    assert explained[64] > explained[16] > explained[4] > 0.0 > explained[1]  # one point per loop: collapsed


@pytest.mark.parametrize("name", ["waveform_vae_both", *[f"waveform_vae_loops{n}" for n in (8, 32, 128, 512)]])
def test_the_shipped_comparison_models_reproduce_their_recorded_held_out_loop_ratio(clips, name):
    from coursekit import checkpoints
    from coursekit.metrics import random_other_ratio
    from coursekit.models.audio_vae import build_audio_vae

    model, ckpt = checkpoints.load_pretrained(name, build_audio_vae)
    loops = clips["test_loops"]
    recorded = ckpt["metrics"]["marks"][-1]
    assert random_other_ratio(reconstruct(model, loops), loops) == pytest.approx(recorded["ratio_loops"], abs=2e-3)
    if name == "waveform_vae_both":
        assert recorded["steps"] == 1135 and ckpt["metrics"]["pitch_kept"]["fraction"] > 0.9
    else:
        assert ckpt["metrics"]["train_loops"] == int(name.removeprefix("waveform_vae_loops"))
        assert recorded["steps"] == 1000
