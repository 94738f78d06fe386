"""coursekit.models.audio_vae: the fully convolutional waveform VAE of lesson 05 (shapes, exact compression,
gradients, determinism, config round trip, clear errors)."""

from __future__ import annotations

import json

import pytest
import torch

from coursekit.models.audio_vae import AudioVAEConfig, AudioVAELoss, build_audio_vae

SMALL = AudioVAEConfig(bands=1, strides=(2, 4), channels=(8, 16), latent_channels=4, dilations=(1, 3))
BANDED = AudioVAEConfig(bands=4, strides=(2,), channels=(8,), latent_channels=2, dilations=(1,))


@pytest.mark.parametrize(
    ("config", "frames"),
    [(AudioVAEConfig(), 3), (AudioVAEConfig(), 125), (SMALL, 1), (SMALL, 7),
     (AudioVAEConfig(bands=1, strides=(3, 5), channels=(8, 16), latent_channels=2), 5), (BANDED, 9)],
)  # fmt: skip
def test_every_frame_holds_exactly_compression_samples(config, frames):
    torch.manual_seed(0)
    model = build_audio_vae(config)
    x = 0.1 * torch.randn(2, 1, frames * config.compression)
    x_hat, mu, logvar = model(x)
    assert mu.shape == logvar.shape == (2, config.latent_channels, frames)
    assert x_hat.shape == x.shape and float(x_hat.detach().abs().max()) < 1.0  # tanh output
    assert model.decode(mu).shape == x.shape


def test_default_compression_is_128_so_a_second_at_16_khz_is_125_frames():
    config = AudioVAEConfig()
    assert config.compression == 8 * 4 * 4 == 128  # three stages: strides 8, 4 and 4
    mu, _ = build_audio_vae(config).encode(torch.zeros(1, 1, 16000))
    assert mu.shape == (1, 16, 125)


def test_a_latent_frame_only_changes_the_audio_near_it():
    """Fully convolutional: changing one latent frame changes the output only within a few frames of it."""
    torch.manual_seed(0)
    model = build_audio_vae(SMALL).eval()
    z = torch.randn(1, 4, 40)
    moved = z.clone()
    moved[0, :, 20] += 3.0
    with torch.no_grad():
        diff = (model.decode(moved) - model.decode(z)).abs()[0, 0]
    changed = torch.nonzero(diff > 1e-6).flatten()
    assert 20 * 8 in changed.tolist()  # the frame's own samples change
    assert changed.min() > 10 * 8 and changed.max() < 30 * 8  # ... and nothing far from it


def test_gradients_reach_every_parameter_and_a_seed_fixes_the_draw():
    torch.manual_seed(0)
    model = build_audio_vae(SMALL)
    x = 0.1 * torch.randn(3, 1, 8 * 16)
    x_hat, mu, logvar = model(x, generator=torch.Generator().manual_seed(1))
    ((x_hat - x) ** 2).mean().add(mu.pow(2).mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    again, _, _ = model(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, x_hat)


def test_config_round_trips_through_a_checkpoint_dict():
    stored = json.loads(json.dumps(SMALL.to_dict()))
    assert AudioVAEConfig.from_dict(stored) == SMALL
    torch.manual_seed(0)
    a = build_audio_vae(stored)
    torch.manual_seed(0)
    b = build_audio_vae(SMALL)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"strides": (4, 4), "channels": (8,)}, r"strides has 2 stages but channels has 1"),
        ({"strides": ()}, r"strides=\(\): give one or more whole numbers"),
        ({"latent_channels": 0}, r"latent_channels=0 must be a whole number >= 1"),
        ({"dilations": (1, 0)}, r"dilations\[1\]=0 must be a whole number >= 1"),
        ({"bands": 0}, r"bands=0 must be a whole number >= 1"),
    ],
)
def test_bad_configs_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        AudioVAEConfig(**fields)


def test_bad_inputs_name_the_fix():
    model = build_audio_vae(SMALL)
    with pytest.raises(ValueError, match=r"x has shape \[2, 128\]; expected float audio \[batch, 1, samples\]"):
        model.encode(torch.zeros(2, 128))
    with pytest.raises(ValueError, match=r"x has 130 samples, not a multiple of the compression 8: crop it to 128"):
        model.encode(torch.zeros(1, 1, 130))
    with pytest.raises(ValueError, match=r"z has shape \[1, 3, 5\]; expected \[batch, 4, frames\]"):
        model.decode(torch.zeros(1, 3, 5))


def test_the_filter_bank_model_sees_bands_and_gives_back_a_waveform():
    """With bands > 1 the first layer reads the PQMF bands (bands channels at 1/bands of the rate)."""
    model = build_audio_vae(BANDED)
    assert model.encoder[0].in_channels == 4 and model.decoder[-1].out_channels == 4
    assert model.pqmf is not None and "pqmf" not in "".join(model.state_dict())  # fixed filters are not saved
    x = 0.1 * torch.randn(1, 1, 3 * BANDED.compression)
    assert model(x)[0].shape == x.shape


def test_the_loss_adds_the_warmed_up_regulariser_to_the_spectral_distance():
    torch.manual_seed(0)
    model = build_audio_vae(SMALL)
    x = 0.3 * torch.randn(4, 1, 8 * 256)
    loss = AudioVAELoss("kl", weight=0.5, warmup_steps=4, generator=torch.Generator().manual_seed(0))
    weights = []
    for _ in range(6):
        parts = loss(model, {"audio": x})
        weights.append(float(parts["weight"]))
        torch.testing.assert_close(parts["loss"], parts["recon"] + parts["weight"] * parts["regulariser"])
    assert weights == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]  # linear warm-up over 4 training calls
    model.eval()
    loss(model, x)
    assert loss.steps == 6  # calls in eval mode do not advance the warm-up
    mu, logvar = model.encode(x)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)
    torch.testing.assert_close(parts["regulariser"], kl.sum(dim=1).mean())  # nats per latent frame


def test_the_wae_loss_decodes_the_mean_and_mse_is_the_waveform_error():
    torch.manual_seed(0)
    model = build_audio_vae(SMALL).eval()
    x = 0.3 * torch.randn(2, 1, 8 * 32)
    parts = AudioVAELoss("mmd", weight=1.0, reconstruction="mse", generator=torch.Generator().manual_seed(0))(model, x)
    x_hat = model.decode(model.encode(x)[0])
    torch.testing.assert_close(parts["recon"], (x_hat - x).pow(2).mean())
    assert float(parts["regulariser"].detach()) > 0.0  # codes of an untrained encoder are not N(0, I)


def test_the_combined_reconstruction_adds_the_relative_waveform_error_to_both_spectral_terms():
    from coursekit.audio import multi_resolution_spectral_convergence, multi_resolution_spectral_distance

    torch.manual_seed(0)
    model = build_audio_vae(SMALL).eval()
    x = 0.3 * torch.randn(2, 1, 8 * 256)
    parts = AudioVAELoss("mmd", reconstruction="spectral+convergence+waveform",
                         generator=torch.Generator().manual_seed(0))(model, x)  # fmt: skip
    x_hat = model.decode(model.encode(x)[0])
    relative = (x_hat - x).pow(2).sum() / x.pow(2).sum()
    expected = multi_resolution_spectral_distance(x_hat, x) + multi_resolution_spectral_convergence(x_hat, x) + relative
    torch.testing.assert_close(parts["recon"], expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"regulariser": "l2"}, r"regulariser='l2': choose one of \('kl', 'mmd'\)"),
        ({"reconstruction": "l1"}, r"reconstruction='l1': choose one of \('spectral', 'spectral\+convergence'"),
        ({"weight": -1.0}, r"weight=-1.0: the regulariser's weight must be a number >= 0"),
        ({"warmup_steps": 1.5}, r"warmup_steps=1.5: give a whole number of steps >= 0"),
    ],
)
def test_bad_loss_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AudioVAELoss(**kwargs)


def test_reconstruction_loss_kinds_on_known_inputs():
    from coursekit.audio import multi_resolution_spectral_convergence, multi_resolution_spectral_distance
    from coursekit.models.audio_vae import reconstruction_loss

    torch.manual_seed(0)
    x = 0.3 * torch.randn(2, 1, 4096)
    x_hat = 0.5 * x + 0.05 * torch.randn(2, 1, 4096)
    distance = multi_resolution_spectral_distance(x_hat, x)
    convergence = multi_resolution_spectral_convergence(x_hat, x)
    torch.testing.assert_close(reconstruction_loss(x_hat, x, "spectral"), distance)
    torch.testing.assert_close(reconstruction_loss(x_hat, x), distance + convergence)  # lessons 05 and 09 train on this
    silent = reconstruction_loss(torch.zeros_like(x), x, "spectral+convergence+waveform")
    silent_spectral = reconstruction_loss(torch.zeros_like(x), x, "spectral+convergence")
    torch.testing.assert_close(silent - silent_spectral, torch.tensor(1.0))  # the waveform term is 1 for silence
    assert float(reconstruction_loss(x, x, "spectral+convergence+waveform")) == pytest.approx(0.0, abs=1e-5)
    torch.testing.assert_close(reconstruction_loss(x_hat, x, "mse"), (x_hat - x).pow(2).mean())
    with pytest.raises(ValueError, match=r"kind='l1': choose one of"):
        reconstruction_loss(x_hat, x, "l1")
