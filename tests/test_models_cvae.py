"""coursekit.models.cvae: the conditional VAE of lesson 08 (shapes, the condition vector, gradients, the
loss against its definition, clear errors, and that generation follows the condition)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from coursekit.losses import kl_normal
from coursekit.models.cvae import ConditionalVAEConfig, build_conditional_vae, cvae_loss

TINY = ConditionalVAEConfig(n_freq=16, n_frames=8, channels=(4, 8), latent_dim=3, n_families=3, lowest_pitch=60,
                            highest_pitch=63)  # fmt: skip


def test_shapes_of_the_default_model():
    torch.manual_seed(0)
    model = build_conditional_vae()
    c = model.condition(torch.tensor([0, 10]), torch.tensor([24, 84]))
    assert c.shape == (2, 11 + 61)
    recon, mu, logvar = model(torch.rand(2, 1, 256, 64), c)
    assert recon.shape == (2, 1, 256, 64) and mu.shape == logvar.shape == (2, 16)
    assert 0 < float(recon.detach().min()) and float(recon.detach().max()) < 1


def test_the_condition_is_a_one_hot_family_then_a_one_hot_key():
    model = build_conditional_vae(TINY)
    c = model.condition(torch.tensor([2, 0]), torch.tensor([60, 63]))
    assert c.tolist() == [[0, 0, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0, 1]]
    family_only = build_conditional_vae(ConditionalVAEConfig(**{**TINY.to_dict(), "use_pitch": False}))
    assert family_only.condition(torch.tensor([1])).tolist() == [[0, 1, 0]]


@pytest.mark.parametrize(
    ("family", "pitch", "message"),
    [(torch.tensor([3]), torch.tensor([60]), r"family must hold indices 0 to 2"),
     (torch.tensor([0]), torch.tensor([64]), r"pitch must hold one MIDI key from 60 to 63"),
     (torch.tensor([0]), None, r"conditioned on pitch too: pass pitch")],
)  # fmt: skip
def test_bad_conditions_are_refused_with_the_fix(family, pitch, message):
    with pytest.raises(ValueError, match=message):
        build_conditional_vae(TINY).condition(family, pitch)


def test_bad_configs_and_inputs_are_refused():
    with pytest.raises(ValueError, match=r"must be divisible by 4"):
        ConditionalVAEConfig(n_freq=18, n_frames=8, channels=(4, 8))
    with pytest.raises(ValueError, match=r"features must be \[batch, 1, 16, 8\]"):
        model = build_conditional_vae(TINY)
        model.encode(torch.rand(1, 1, 16, 9), model.condition(torch.tensor([0]), torch.tensor([60])))


def test_the_loss_is_summed_bce_plus_beta_kl_and_its_gradients_reach_the_encoder():
    torch.manual_seed(0)
    model = build_conditional_vae(TINY)
    batch = {"features": torch.rand(4, 1, 16, 8), "family": torch.tensor([0, 1, 2, 0]),
             "pitch": torch.tensor([60, 61, 62, 63])}  # fmt: skip
    torch.manual_seed(1)
    parts = cvae_loss(model, batch, beta=0.5)
    torch.manual_seed(1)
    recon, mu, logvar = model(batch["features"], model.condition(batch["family"], batch["pitch"]))
    bce = F.binary_cross_entropy(recon, batch["features"], reduction="sum") / 4
    torch.testing.assert_close(parts["recon"], bce)
    torch.testing.assert_close(parts["kl"], kl_normal(mu, logvar).sum(dim=1).mean())
    torch.testing.assert_close(parts["loss"], parts["recon"] + 0.5 * parts["kl"])
    parts["loss"].backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_generation_follows_the_condition_once_trained():
    # two families drawn as two different images: after training, asking for a family draws its image
    torch.manual_seed(0)
    config = ConditionalVAEConfig(**{**TINY.to_dict(), "use_pitch": False})
    model = build_conditional_vae(config)
    images = torch.zeros(3, 1, 16, 8)
    images[0, :, :8], images[1, :, 8:], images[2] = 1.0, 1.0, 0.0
    images = images.clamp(0.02, 0.98)
    batch = {"features": images.repeat(8, 1, 1, 1), "family": torch.tensor([0, 1, 2]).repeat(8)}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        cvae_loss(model, batch)["loss"].backward()
        optimizer.step()
    drawn = model.generate(torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (3, 1, 16, 8)
    errors = (drawn - images).abs().mean(dim=(1, 2, 3))
    assert errors.max() < 0.1
