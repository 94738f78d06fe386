"""coursekit.recipes: the MNIST loaders and measurements of lesson 02, and the shipped checkpoints."""

from __future__ import annotations

import pytest
import torch

from coursekit import checkpoints, config
from coursekit.losses import elbo_loss
from coursekit.models.vae import VAEConfig, build_vae, vae_loss
from coursekit.recipes import RECIPES
from coursekit.recipes.mnist_vae import MNIST_VAES, MNIST_VALID, describe_vae, mnist_loaders, train_mnist_vae


def _images(loader) -> torch.Tensor:
    return torch.cat([batch["image"] for batch in loader])


def test_loaders_split_the_train_digits_into_disjoint_train_and_validation_sets():
    train, valid, test = mnist_loaders()
    assert len(valid.dataset) == MNIST_VALID
    assert len(train.dataset) + len(valid.dataset) == len(train.dataset.dataset)
    assert not set(train.dataset.indices) & set(valid.dataset.indices)
    assert len(test.dataset) == 1000 and test.dataset.split == "test"
    assert mnist_loaders(n_train=100)[0].dataset.indices == train.dataset.indices[:100]


def test_loaders_are_deterministic_given_the_seed():
    first = next(iter(mnist_loaders(seed=3)[0]))["image"]
    assert torch.equal(first, next(iter(mnist_loaders(seed=3)[0]))["image"])
    assert not torch.equal(first, next(iter(mnist_loaders(seed=4)[0]))["image"])


def test_vae_loss_is_the_elbo_of_the_models_output():
    model = build_vae(VAEConfig("linear", latent_dim=4))
    batch = next(iter(mnist_loaders(batch_size=8)[0]))
    torch.manual_seed(0)
    parts = vae_loss(model, batch, beta=2.0)
    torch.manual_seed(0)
    logits, mu, logvar = model(batch["image"])
    expected = elbo_loss(batch["image"], logits, mu, logvar, beta=2.0)
    assert set(parts) == {"loss", "recon", "kl"}
    for key in parts:
        torch.testing.assert_close(parts[key], expected[key])
    torch.testing.assert_close(parts["loss"], parts["recon"] + 2.0 * parts["kl"])


def test_describe_vae_is_repeatable_and_adds_up():
    model = build_vae(VAEConfig("linear", latent_dim=4))
    _, valid, _ = mnist_loaders()
    first, second = describe_vae(model, valid), describe_vae(model, valid)
    assert first == second
    assert first["elbo_loss"] == pytest.approx(first["recon"] + first["kl"], rel=1e-5)
    assert 0 <= first["active_units"] <= 4
    assert 0 < first["pixel_mse"] < 1


def test_a_short_training_beats_the_untrained_model_and_keeps_its_best_epoch(tmp_path):
    config.seed_everything(0)
    untrained = describe_vae(build_vae(VAEConfig("linear", latent_dim=4)), mnist_loaders()[1])
    path = tmp_path / "vae.pt"
    model, metrics = train_mnist_vae(VAEConfig("linear", latent_dim=4), epochs=3, checkpoint_path=path, n_train=500,
                                     live_plot=False, progress=False)
    assert metrics["valid_elbo_loss"] < untrained["elbo_loss"] - 100  # ~545 nats untrained, ~200 after
    valid_losses = metrics["history"]["valid_loss"]
    assert metrics["best_epoch"] == 1 + valid_losses.index(min(valid_losses))
    loaded, ckpt = checkpoints.load_checkpoint(path, build_vae)
    pairs = zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert ckpt["metrics"]["train_digits"] == 500 and ckpt["config"]["latent_dim"] == 4


# ----------------------------------------------------------------------------- shipped checkpoints
SHIPPED = sorted(name for name in checkpoints.list_pretrained() if name in MNIST_VAES)  # the lesson-02 VAEs


def test_every_mnist_recipe_has_a_registered_checkpoint_and_every_checkpoint_a_recipe():
    assert set(MNIST_VAES) == set(SHIPPED)
    for name, entry in checkpoints.list_pretrained().items():
        assert entry["recipe"].split()[-2] in RECIPES, name


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_is_small_verified_and_reproduces_its_recorded_test_elbo(name):
    entry = checkpoints.list_pretrained()[name]
    path = config.checkpoint_dir() / entry["file"]
    assert path.stat().st_size == entry["size_bytes"] < 10 * 2**20
    model, ckpt = checkpoints.load_pretrained(name, build_vae)
    measured = describe_vae(model, mnist_loaders()[2])
    assert measured["elbo_loss"] == pytest.approx(ckpt["metrics"]["test_elbo_loss"], rel=1e-4)
    assert measured["active_units"] == ckpt["metrics"]["test_active_units"]
    trained_on = "test_recon" if ckpt["metrics"].get("beta") == 0 else "test_elbo_loss"  # what the run minimised
    assert ckpt["metrics"][trained_on] < 180  # trained; the mean-image baseline scores ~207 nats, untrained ~545
