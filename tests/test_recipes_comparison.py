"""coursekit.recipes.model_comparison: lesson 08's data and training functions at tiny sizes, and the shipped
checkpoints reproducing their recorded figures."""

from __future__ import annotations

import math

import pytest
import torch

from coursekit import checkpoints
from coursekit.data.nsynth import NSynthMini
from coursekit.models.family import build_family_classifier
from coursekit.models.frame_lstm import frame_windows
from coursekit.recipes import model_comparison as mc


def test_note_clips_are_the_notes_first_seconds_at_a_peak_of_0_9_with_their_labels():
    clips = mc.note_clips("valid", 0.5, size="tiny")
    data = NSynthMini("valid", size="tiny")
    assert clips["audio"].shape == (len(data), 1, 8000)
    assert torch.allclose(clips["audio"].abs().amax(dim=-1), torch.tensor(0.9))
    assert clips["family"].tolist() == [e["instrument_family"] for e in data.examples]
    assert clips["pitch"].tolist() == [e["pitch"] for e in data.examples]
    first = data[0]["audio"][..., :8000]
    torch.testing.assert_close(clips["audio"][0], first / first.abs().max() * 0.9)


def test_a_short_classifier_run_reports_accuracy_it_can_reproduce():
    model, metrics = mc.train_family_classifier(epochs=1, size="tiny", live_plot=False, progress=False)
    test = mc.note_clips("test", 1.0, "tiny")
    assert metrics["test_accuracy"] == pytest.approx(mc.accuracy(model, test), abs=1e-4)
    assert sum(map(sum, metrics["confusion"])) == len(test["family"])
    assert metrics["chance"] == pytest.approx(1 / 11, abs=1e-4)


def test_a_short_cvae_run_reports_its_negative_elbo_as_reconstruction_plus_kl():
    model, metrics = mc.train_cvae(epochs=1, size="tiny", live_plot=False, progress=False)
    assert metrics["test_nelbo"] == pytest.approx(metrics["test_recon"] + metrics["test_kl"], abs=0.02)
    assert metrics["epochs"] == 1 and metrics["parameters"] == sum(p.numel() for p in model.parameters())


def test_the_gan_learning_rate_decays_exponentially_per_generator_step():
    model, metrics = mc.train_gan("smoothed", steps=4, size="tiny", log_every=2, progress=False)
    assert [h["step"] for h in metrics["history"]] == [2, 4]
    assert metrics["history"][-1]["lr"] == pytest.approx(mc.GAN_LR * mc.GAN_DECAY**4)
    assert metrics["n_critic"] == 1 and "wasserstein" not in metrics["history"][-1]


def test_the_wgan_logs_its_wasserstein_estimate():
    _, metrics = mc.train_gan("wgan-gp", steps=1, size="tiny", log_every=1, progress=False)
    assert metrics["n_critic"] == 5 and math.isfinite(metrics["history"][0]["wasserstein"])


def test_a_short_frame_lstm_run_reports_the_copy_last_frame_baseline_of_the_test_notes():
    model, metrics = mc.train_frame_lstm(steps=2, size="tiny", live_plot=False, progress=False)
    from coursekit.data.notes import nsynth_features

    windows, targets = frame_windows(nsynth_features("test", "tiny", mc.FEATURES).tensors["features"],
                                     model.config.window, mc.LSTM_FRAMES)  # fmt: skip
    assert metrics["copy_last_mse"] == pytest.approx(float((windows[:, -1] - targets).pow(2).mean()), abs=1e-6)


def test_a_short_wavenet_run_stops_at_its_step_budget_and_scores_against_uniform():
    model, metrics = mc.train_wavenet(steps=2, size="tiny", live_plot=False, progress=False)
    assert metrics["steps"] == 2 and metrics["uniform_nats"] == pytest.approx(math.log(256), abs=1e-4)
    assert metrics["receptive_field"] == model.config.receptive_field == 33


def test_the_shipped_family_classifier_reproduces_its_recorded_test_accuracy():
    model, ckpt = checkpoints.load_pretrained("family_classifier", build_family_classifier)
    test = mc.note_clips("test")
    assert mc.accuracy(model, test) == pytest.approx(ckpt["metrics"]["test_accuracy"], abs=1e-4)
    assert ckpt["metrics"]["test_accuracy"] > 3 * ckpt["metrics"]["chance"]  # well above chance on unseen instruments


def test_the_shipped_frame_lstm_and_wavenets_reproduce_their_recorded_test_figures():
    from coursekit.data.notes import nsynth_features
    from coursekit.models.frame_lstm import build_frame_lstm
    from coursekit.models.wavenet import build_wavenet_ae, wavenet_loss

    lstm, ckpt = checkpoints.load_pretrained("frame_lstm", build_frame_lstm)
    windows, targets = frame_windows(nsynth_features("test", "mini", mc.FEATURES).tensors["features"],
                                     lstm.config.window, mc.LSTM_FRAMES)  # fmt: skip
    with torch.no_grad():
        predicted = torch.cat([lstm.eval()(chunk) for chunk in windows.split(512)])
    assert float((predicted - targets).pow(2).mean()) == pytest.approx(ckpt["metrics"]["test_mse"], abs=1e-6)
    test = mc.note_clips("test")["audio"][..., : mc.WAVENET_CROP]
    for name in mc.WAVENET_DILATIONS:
        model, ckpt = checkpoints.load_pretrained(name, build_wavenet_ae)
        assert model.config.dilations == mc.WAVENET_DILATIONS[name]
        with torch.no_grad():
            nats = torch.stack([wavenet_loss(model.eval(), chunk)["loss"] for chunk in test.split(16)]).mean()
        assert float(nats) == pytest.approx(ckpt["metrics"]["test_nats"], abs=1e-3)
        assert ckpt["metrics"]["test_nats"] < 0.8 * ckpt["metrics"]["uniform_nats"]  # it learned something


def test_the_shipped_cvae_and_gans_load_with_their_training_records():
    from coursekit.data.notes import nsynth_features
    from coursekit.models.cvae import build_conditional_vae, cvae_loss
    from coursekit.models.gan import build_gan

    cvae, ckpt = checkpoints.load_pretrained("cvae", build_conditional_vae)
    test = nsynth_features("test", "mini", mc.FEATURES)
    batch = {key: test.tensors[key] for key in ("features", "family", "pitch")}
    torch.manual_seed(0)
    with torch.no_grad():
        nelbo = float(cvae_loss(cvae.eval(), batch)["loss"])
    assert nelbo == pytest.approx(ckpt["metrics"]["test_nelbo"], rel=0.02)  # one posterior draw per note
    for name, objective in (("gan_wgan", "wgan-gp"), ("gan_smoothed", "smoothed")):
        gan, ckpt = checkpoints.load_pretrained(name, build_gan)
        assert ckpt["metrics"]["objective"] == objective and ckpt["metrics"]["steps"] == mc.GAN_STEPS[objective]
        decayed = mc.GAN_LR * mc.GAN_DECAY ** mc.GAN_STEPS[objective]
        assert ckpt["metrics"]["history"][-1]["lr"] == pytest.approx(decayed)
