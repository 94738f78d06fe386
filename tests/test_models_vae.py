"""coursekit.models.vae: the three image VAEs and their config."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from torch import nn

from coursekit.losses import elbo_loss
from coursekit.models.vae import MLPVAE, ConvVAE, VAEConfig, build_vae

KINDS = ["linear", "conv", "conv_bn"]


def _model(kind: str, latent_dim: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_vae(VAEConfig(kind=kind, latent_dim=latent_dim))


@pytest.fixture
def images(rng):
    return torch.rand(5, 1, 28, 28, generator=rng)


# ----------------------------------------------------------------------------- shapes and interface
@pytest.mark.parametrize("kind", KINDS)
def test_encode_decode_forward_shapes(kind, images):
    model = _model(kind, latent_dim=3)
    mu, logvar = model.encode(images)
    assert mu.shape == logvar.shape == (5, 3)
    assert model.decode(mu).shape == (5, 1, 28, 28)
    logits, mu2, logvar2 = model(images)
    assert logits.shape == (5, 1, 28, 28)
    torch.testing.assert_close((mu2, logvar2), (mu, logvar))  # forward encodes the same way


@pytest.mark.parametrize(("kind", "cls"), [("linear", MLPVAE), ("conv", ConvVAE), ("conv_bn", ConvVAE)])
def test_build_vae_picks_the_class_and_batch_norm_only_for_conv_bn(kind, cls):
    model = _model(kind)
    assert type(model) is cls
    has_norm = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert has_norm == (kind == "conv_bn")
    assert any(isinstance(m, nn.Conv2d) for m in model.modules()) == (kind != "linear")


@pytest.mark.parametrize("kind", ["conv", "conv_bn"])
def test_only_batch_norm_makes_an_example_depend_on_its_batch_in_training_mode(kind, rng):
    model = _model(kind).train()
    batch = torch.rand(4, 1, 28, 28, generator=rng)
    alone, _ = model.encode(batch[:1])
    together, _ = model.encode(torch.cat([batch[:1], batch[1:] * 0.2]))
    assert torch.allclose(alone[0], together[0], atol=1e-5) == (kind == "conv")


# ----------------------------------------------------------------------------- reparameterisation
@pytest.mark.parametrize("kind", KINDS)
def test_reparameterize_is_mu_plus_scaled_noise_from_the_generator(kind, rng):
    model = _model(kind, latent_dim=3)
    mu, logvar = torch.randn(2, 6, 3, generator=rng).unbind(0)
    z = model.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(7))
    eps = torch.randn(6, 3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps)
    torch.testing.assert_close(model.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(7)), z)
    assert not torch.allclose(model.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(8)), z)


def test_reparameterize_returns_mu_when_the_variance_vanishes(rng):
    model = _model("linear", latent_dim=3)
    mu = torch.randn(6, 3, generator=rng)
    z = model.reparameterize(mu, torch.full((6, 3), -100.0), generator=rng)
    torch.testing.assert_close(z, mu, atol=1e-12, rtol=0)


def test_reparameterize_draws_from_the_posterior(rng):
    model = _model("linear", latent_dim=2)
    mu = torch.tensor([[1.0, -2.0]]).expand(20_000, 2)
    logvar = torch.tensor([[0.0, 2 * torch.log(torch.tensor(3.0))]]).expand(20_000, 2)  # std 1 and 3
    z = model.reparameterize(mu, logvar, generator=rng)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.1, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 3.0]), atol=0, rtol=0.03)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_the_encoder_through_the_sample(kind, images):
    model = _model(kind)
    mu, logvar = model.encode(images)
    z = model.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    model.decode(z).sum().backward()  # the decoder's output only: no KL term feeding the encoder
    first = next(m for m in model.encoder.modules() if isinstance(m, nn.Linear | nn.Conv2d))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    assert model.to_logvar.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- sampling and init
@pytest.mark.parametrize("kind", KINDS)
def test_sample_gives_images_in_0_1_reproducibly(kind):
    model = _model(kind).eval()
    images = model.sample(6, generator=torch.Generator().manual_seed(3))
    assert images.shape == (6, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0
    assert not images.requires_grad
    torch.testing.assert_close(model.sample(6, generator=torch.Generator().manual_seed(3)), images)
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(images, torch.sigmoid(model.decode(z)).detach())


@pytest.mark.parametrize("kind", KINDS)
def test_init_is_deterministic_under_manual_seed(kind):
    first, second, other = _model(kind, seed=0), _model(kind, seed=0), _model(kind, seed=1)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert not torch.equal(first.to_mu.weight, other.to_mu.weight)


@pytest.mark.parametrize("kind", KINDS)
def test_models_are_small(kind):
    model = build_vae(VAEConfig(kind=kind))  # the defaults the lesson uses
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert buffer.tell() < 10 * 2**20


@pytest.mark.parametrize("kind", KINDS)
def test_a_hundred_steps_overfit_a_fixed_batch_of_random_binary_images(kind):
    torch.manual_seed(0)
    x = (torch.rand(32, 1, 28, 28) > 0.5).float()
    model = build_vae(VAEConfig(kind=kind, latent_dim=8))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    history = []
    for _ in range(100):
        loss = elbo_loss(x, *model(x, generator=gen))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    # A model that ignores its input can do no better than p = 0.5 per pixel: 784 log 2 = 543 nats.
    # Going well below that means the latents carry which image is which.
    coin_flips = 784 * math.log(2)
    assert sum(history[-5:]) / 5 < 0.8 * coin_flips, history[::10]


# ----------------------------------------------------------------------------- config
def test_config_round_trips_through_json_and_rebuilds_the_same_model():
    config = VAEConfig(kind="linear", latent_dim=2, hidden_dims=(64, 32, 16), channels=(8, 16))
    stored = json.loads(json.dumps(config.to_dict()))
    assert stored == {"kind": "linear", "latent_dim": 2, "hidden_dims": [64, 32, 16], "channels": [8, 16]}
    assert VAEConfig.from_dict(stored) == config
    model = build_vae(config)
    rebuilt = build_vae(stored)
    rebuilt.load_state_dict(model.state_dict())  # same architecture: every key and shape fits
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rebuilt.encode(x), model.encode(x))


def test_config_hidden_dims_and_channels_set_the_layer_sizes():
    linear = build_vae(VAEConfig(kind="linear", latent_dim=5, hidden_dims=(40, 30)))
    widths = [m.out_features for m in linear.encoder.modules() if isinstance(m, nn.Linear)]
    assert widths == [40, 30] and linear.to_mu.in_features == 30
    conv = build_vae(VAEConfig(kind="conv", latent_dim=5, channels=(4, 6)))
    assert [m.out_channels for m in conv.encoder.modules() if isinstance(m, nn.Conv2d)] == [4, 6]
    assert conv.to_mu.in_features == 6 * 7 * 7


def test_config_defaults_are_a_conv_vae_with_16_latents():
    assert VAEConfig() == VAEConfig(kind="conv", latent_dim=16, hidden_dims=(256, 128), channels=(32, 64))


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("shape", "hint"),
    [((3, 784), r"x.view\(-1, 1, 28, 28\)"), ((3, 28, 28), r"x.unsqueeze\(1\)"), ((3, 1, 32, 32), r"28x28")],
)
@pytest.mark.parametrize("kind", KINDS)
def test_wrong_input_shapes_say_how_to_fix_them(kind, shape, hint):
    with pytest.raises(ValueError, match=r"x has shape \[" + r", ".join(map(str, shape)) + r"\]; expected .*" + hint):
        _model(kind)(torch.zeros(shape))


def test_integer_images_are_rejected_with_the_scaling_hint():
    with pytest.raises(TypeError, match=r"x has dtype torch.uint8; .* use x.float\(\) / 255"):
        _model("conv").encode(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_decode_rejects_a_wrong_latent_size():
    with pytest.raises(ValueError, match=r"z has shape \[2, 3\]; expected \[batch, 4\]"):
        _model("conv", latent_dim=4).decode(torch.zeros(2, 3))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "transformer"}, r"kind='transformer' is not a VAE kind: use one of \['linear', 'conv', 'conv_bn'\]"),
        ({"latent_dim": 0}, r"latent_dim=0 must be a whole number >= 1"),
        ({"latent_dim": 2.5}, r"latent_dim=2.5 must be a whole number >= 1"),
        ({"hidden_dims": ()}, r"hidden_dims=\(\) must be one or more positive widths"),
        ({"hidden_dims": 256}, r"hidden_dims=256 must be one or more positive widths, e.g. \(256, 128\)"),
        ({"channels": (32, 64, 128)}, r"channels=\(32, 64, 128\) must be two positive channel counts"),
    ],
)
def test_config_rejects_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        VAEConfig(**fields)


def test_from_dict_names_unknown_fields():
    with pytest.raises(ValueError, match=r"VAEConfig has no field\(s\) \['latent'\]: its fields are"):
        VAEConfig.from_dict({"kind": "conv", "latent": 2})


def test_sample_and_reparameterize_reject_bad_arguments():
    model = _model("linear")
    with pytest.raises(ValueError, match=r"n=0 must be a whole number >= 1"):
        model.sample(0)
    with pytest.raises(ValueError, match=r"mu has shape \[2, 4\] but logvar has \[2, 3\]"):
        model.reparameterize(torch.zeros(2, 4), torch.zeros(2, 3))
