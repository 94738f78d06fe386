"""coursekit.models.latent_vae: lesson 06's temporal VAE on latent trajectories (shapes down to one point,
the two objectives of source 004 section 4.2, gradients, determinism, config round trip, clear errors)."""

from __future__ import annotations

import json

import pytest
import torch

from coursekit.losses import gaussian_nll, kl_gaussians
from coursekit.models.latent_vae import LatentVAEConfig, build_latent_vae, latent_vae_loss

SMALL = LatentVAEConfig(in_channels=4, frames=32, points=4, latent_channels=3, width=8)


def posterior(config: LatentVAEConfig, batch: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, config.in_channels, config.frames)
    return {"mu": torch.randn(shape, generator=g), "logvar": torch.randn(shape, generator=g) - 2}


@pytest.mark.parametrize("points", [32, 8, 2, 1])
def test_the_output_length_is_one_argument_down_to_a_single_point(points):
    config = LatentVAEConfig(in_channels=4, frames=32, points=points, latent_channels=3, width=8)
    assert config.stages == {32: 0, 8: 2, 2: 4, 1: 5}[points]
    model = build_latent_vae(config)
    trajectory = posterior(config)["mu"]
    mean, logvar, mu, logvar_z = model(trajectory)
    assert mu.shape == logvar_z.shape == (2, 3, points)
    assert mean.shape == logvar.shape == trajectory.shape
    assert model.sample(5).shape == (5, 4, 32)


def test_the_default_holds_a_loop_of_512_frames_in_one_point():
    config = LatentVAEConfig()
    assert (config.frames, config.points, config.stages) == (512, 1, 9)


def test_the_fixed_objective_is_the_gaussian_nll_of_the_target():
    torch.manual_seed(0)
    model = build_latent_vae(SMALL)
    batch = posterior(SMALL)
    batch["target"] = batch["mu"] + 0.1
    parts = latent_vae_loss(model, batch, "fixed", beta=0.5, generator=torch.Generator().manual_seed(1))
    mean, logvar, mu, logvar_z = model(batch["target"], torch.Generator().manual_seed(1))
    torch.testing.assert_close(parts["recon"], gaussian_nll(batch["target"], mean, logvar))
    torch.testing.assert_close(parts["loss"], parts["recon"] + 0.5 * parts["kl"])


def test_the_posterior_objective_is_the_kl_from_the_first_models_posterior():
    torch.manual_seed(0)
    model = build_latent_vae(SMALL)
    batch = posterior(SMALL)
    parts = latent_vae_loss(model, batch, "posterior", generator=torch.Generator().manual_seed(1))
    mean, logvar, _, _ = model(batch["mu"], torch.Generator().manual_seed(1))
    expected = kl_gaussians(batch["mu"], batch["logvar"], mean, logvar).sum(dim=(1, 2)).mean()
    torch.testing.assert_close(parts["recon"], expected)
    assert float(parts["recon"].detach()) > 0.0


def test_both_objectives_learn_a_small_set_of_trajectories():
    """A few hundred steps bring either loss well below its start: the gradients reach the right places."""
    for objective in ("fixed", "posterior"):
        torch.manual_seed(0)
        model = build_latent_vae(SMALL)
        batch = posterior(SMALL, batch=4)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        losses = []
        for _ in range(100):
            parts = latent_vae_loss(model, batch, objective, beta=0.1)
            optimizer.zero_grad()
            parts["loss"].backward()
            optimizer.step()
            losses.append(float(parts["loss"].detach()))
        assert losses[-1] < 0.5 * losses[0], objective


def test_config_round_trips_and_a_seed_fixes_the_weights():
    stored = json.loads(json.dumps(SMALL.to_dict()))
    assert LatentVAEConfig.from_dict(stored) == SMALL
    torch.manual_seed(0)
    a = build_latent_vae(stored)
    torch.manual_seed(0)
    b = build_latent_vae(SMALL)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_bad_settings_and_inputs_name_the_fix():
    with pytest.raises(ValueError, match=r"frames=512, points=3: frames / points must be a power of two"):
        LatentVAEConfig(points=3)
    model = build_latent_vae(SMALL)
    with pytest.raises(ValueError, match=r"trajectory has shape \[2, 4, 30\]; expected \[batch, 4, 32\]"):
        model.encode(torch.zeros(2, 4, 30))
    with pytest.raises(ValueError, match=r"z has shape \[1, 3, 5\]; expected \[batch, 3, 4\]"):
        model.decode(torch.zeros(1, 3, 5))
    with pytest.raises(ValueError, match=r"objective='mse': choose one of \('fixed', 'posterior'\)"):
        latent_vae_loss(model, posterior(SMALL), "mse")
