"""coursekit.models.diffusion and coursekit.recipes.latent_diffusion: lesson 09's latent DDPM (the cosine
schedule and the DDIM step against diffusers, the forward process's statistics, the v-parametrisation's
round trip, exact sampling with an oracle network, errors, and the recipe's standardisation)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from coursekit.models.diffusion import (
    DiffusionConfig,
    TrajectoryDenoiser,
    add_noise,
    build_denoiser,
    cosine_alpha_bar,
    ddim_step,
    sample_trajectories,
    split_v,
    step_embedding,
    v_target,
)
from coursekit.recipes.latent_diffusion import train_diffusion

TINY = DiffusionConfig(latent_channels=3, channels=8, dilations=(1, 2), steps=50)


def random_denoiser(config: DiffusionConfig = TINY) -> TrajectoryDenoiser:
    """A denoiser whose output is not zero (the shipped initialisation zeroes the last layer)."""
    torch.manual_seed(0)
    model = build_denoiser(config).eval()
    torch.nn.init.normal_(model.outp.weight, std=0.3)
    return model


class Oracle(TrajectoryDenoiser):
    """Predicts the exact ``v`` of a known clean (standardised) ``x0`` from ``x_t``: what a perfect network does."""

    def __init__(self, config: DiffusionConfig, x0: torch.Tensor) -> None:
        super().__init__(config)
        self.x0 = x0

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = self.alpha_bar[t][:, None, None].double()
        eps = (x_t.double() - abar.sqrt() * self.x0) / (1 - abar).sqrt()
        return (abar.sqrt() * eps - (1 - abar).sqrt() * self.x0).float()


@pytest.mark.parametrize("steps", [10, 1000])
def test_cosine_schedule_starts_at_one_and_falls_strictly(steps):
    abar = cosine_alpha_bar(steps)
    assert abar.shape == (steps + 1,) and abar.dtype == torch.float64
    assert float(abar[0]) == 1.0
    assert torch.all(abar[1:] < abar[:-1])
    assert 0 < float(abar[-1]) < 1e-4  # the last beta is capped at 0.999, so abar_T is tiny but not 0
    betas = 1 - abar[1:] / abar[:-1]
    assert float(betas.max()) == pytest.approx(0.999)


@pytest.mark.parametrize("steps", [10, 1000])
def test_cosine_schedule_equals_diffusers_squaredcos_cap_v2(steps):
    """Our ``abar_t`` (t = 1 .. T) is diffusers' ``alphas_cumprod[t - 1]`` (diffusers counts steps from 0)."""
    reference = DDPMScheduler(num_train_timesteps=steps, beta_schedule="squaredcos_cap_v2").alphas_cumprod
    torch.testing.assert_close(cosine_alpha_bar(steps)[1:].float(), reference, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(build_denoiser({"steps": steps, "channels": 8}).alpha_bar[1:], reference)


def test_add_noise_has_the_forward_process_mean_and_variance():
    """Over 40,000 noise draws ``x_t`` has mean ``sqrt(abar_t) x0`` and variance ``1 - abar_t`` per element.

    Standard errors: the mean's is ``sqrt((1 - abar) / n)`` ~ 0.004 and the variance's ``(1 - abar) sqrt(2 / n)``
    ~ 0.005; the tolerances are 5 of them.
    """
    model = build_denoiser(TINY)
    x0 = torch.tensor([[[1.5, -2.0, 0.0, 0.7]]]).expand(1, 3, 4).clone()
    n, t = 40_000, 20
    abar = float(model.alpha_bar[t])
    assert 0.3 < abar < 0.7  # a step in the middle, where both terms matter
    noise = torch.randn((n, 3, 4), generator=torch.Generator().manual_seed(0))
    x_t = add_noise(model, x0.expand(n, 3, 4), torch.full((n,), t), noise)
    torch.testing.assert_close(x_t.mean(0), math.sqrt(abar) * x0[0], rtol=0, atol=5 * math.sqrt((1 - abar) / n))
    torch.testing.assert_close(x_t.var(0), torch.full((3, 4), 1 - abar), rtol=0, atol=5 * (1 - abar) * math.sqrt(2 / n))
    assert torch.equal(add_noise(model, x0, torch.tensor([0]), noise[:1]), x0)  # abar_0 = 1: no noise at all


def test_v_target_and_split_v_round_trip():
    model = build_denoiser(TINY)
    generator = torch.Generator().manual_seed(1)
    x0, noise = torch.randn((4, 3, 9), generator=generator), torch.randn((4, 3, 9), generator=generator)
    t = torch.tensor([1, 17, 33, 50])
    x_t = add_noise(model, x0, t, noise)
    found_x0, found_eps = split_v(model, x_t, v_target(model, x0, t, noise), t)
    torch.testing.assert_close(found_x0, x0, rtol=0, atol=1e-5)
    torch.testing.assert_close(found_eps, noise, rtol=0, atol=1e-5)


def trailing_ddim(steps: int, total: int) -> DDIMScheduler:
    scheduler = DDIMScheduler(num_train_timesteps=total, beta_schedule="squaredcos_cap_v2",
                              prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=True,
                              timestep_spacing="trailing")  # fmt: skip
    scheduler.set_timesteps(steps)
    return scheduler


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize(("t", "t_prev"), [(50, 40), (30, 20), (10, 0)])
def test_a_ddim_step_equals_diffusers(t, t_prev, eta):
    """diffusers' step from its timestep ``t - 1`` to ``t - 1 - T / steps`` is ours from ``t`` to ``t_prev``.

    (At our ``t_prev = 0`` diffusers' previous timestep is -1, where ``set_alpha_to_one`` gives ``abar = 1``, our
    ``abar_0``.) With ``eta = 0`` a v-step is a rotation by the angle between ``t`` and ``t_prev``, which the cosine
    schedule keeps the same when both shift by one, so only the end steps would catch an off-by-one there; with
    ``eta = 1`` (the noise ``z`` replayed from the same seed) every step does.
    """
    model = random_denoiser()
    scheduler = trailing_ddim(5, 50)  # trailing spacing: timesteps 49, 39, ..., 9, i.e. our 50, 40, ..., 10
    assert scheduler.timesteps.tolist() == [49, 39, 29, 19, 9]
    x_t = torch.randn((2, 3, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        v = model(x_t, torch.full((2,), t))
        assert v.abs().mean() > 0.1  # a network output that matters
        ours = ddim_step(model, x_t, t, t_prev, eta=eta, generator=torch.Generator().manual_seed(3))
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(3))
    theirs = scheduler.step(v, t - 1, x_t, eta=eta, variance_noise=z).prev_sample
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert (ours - x_t).abs().mean() > 1e-2  # the step moved the sample


def test_a_deterministic_step_is_a_rotation():
    """With ``abar_t = cos^2(phi_t)``, an ``eta = 0`` step is ``cos(d) x_t - sin(d) v``, ``d = phi_t - phi_prev``."""
    model = random_denoiser()
    x_t = torch.randn((2, 3, 16), generator=torch.Generator().manual_seed(12))
    for t, t_prev in ((50, 49), (33, 7), (12, 0)):
        with torch.no_grad():
            v = model(x_t, torch.full((2,), t))
            ours = ddim_step(model, x_t, t, t_prev)
        d = float(model.alpha_bar[t].sqrt().acos() - model.alpha_bar[t_prev].sqrt().acos())
        torch.testing.assert_close(ours, math.cos(d) * x_t - math.sin(d) * v, rtol=1e-4, atol=1e-4)


def test_deterministic_sampling_follows_diffusers_step_by_step():
    """The whole of :func:`sample_trajectories` with ``eta = 0``: the same start, the same steps as diffusers' loop."""
    model = random_denoiser()
    model.mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
    model.std.copy_(torch.tensor([2.0, 0.5, 1.0]))
    ours = sample_trajectories(model, 2, 16, steps=5, generator=torch.Generator().manual_seed(3))
    x = torch.randn((2, 3, 16), generator=torch.Generator().manual_seed(3))  # the draw sample_trajectories starts from
    scheduler = trailing_ddim(5, 50)
    with torch.no_grad():
        for timestep in scheduler.timesteps.tolist():
            x = scheduler.step(model(x, torch.full((2,), timestep + 1)), timestep, x).prev_sample
    torch.testing.assert_close(ours, model.unstandardise(x), rtol=1e-4, atol=1e-4)


def test_an_ancestral_step_equals_ddpm_with_the_same_noise():
    """``eta = 1`` from ``t`` to ``t - 1`` is DDPM's step: posterior mean plus ``sqrt(beta_tilde)`` times the noise."""
    model = random_denoiser()
    ddpm = DDPMScheduler(num_train_timesteps=50, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                         clip_sample=False, variance_type="fixed_small")  # fmt: skip
    x_t = torch.randn((2, 3, 16), generator=torch.Generator().manual_seed(4))
    for t in (50, 25, 2):
        with torch.no_grad():
            ours = ddim_step(model, x_t, t, t - 1, eta=1.0, generator=torch.Generator().manual_seed(5))
            v = model(x_t, torch.full((2,), t))
        theirs = ddpm.step(v, t - 1, x_t, generator=torch.Generator().manual_seed(5)).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_ancestral_step_noise_has_the_ddpm_posterior_variance():
    """With the noise ``z`` replayed, ``x_prev - deterministic part = sigma z``, and over 48,000 draws the
    spread of ``x_prev`` around the ``eta = 0`` step's direction is ``sigma^2 = beta_tilde`` within 3 %
    (the relative standard error of a variance of n draws is sqrt(2 / n) = 0.6 %)."""
    total, t = 50, 30
    model = random_denoiser()
    abar = cosine_alpha_bar(total)
    beta = 1 - abar[t] / abar[t - 1]
    beta_tilde = float((1 - abar[t - 1]) / (1 - abar[t]) * beta)  # DDPM's posterior variance
    assert float(DDPMScheduler(num_train_timesteps=total, beta_schedule="squaredcos_cap_v2")._get_variance(t - 1)) == (
        pytest.approx(beta_tilde, rel=1e-4)
    )
    x_t = torch.randn((1, 3, 16_000), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        x0, eps = split_v(model, x_t, model(x_t, torch.full((1,), t)), torch.full((1,), t))
        x_prev = ddim_step(model, x_t, t, t - 1, eta=1.0, generator=torch.Generator().manual_seed(7))
    a_prev = float(model.alpha_bar[t - 1])
    mean = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - beta_tilde) * eps
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(x_prev, mean + math.sqrt(beta_tilde) * z, rtol=1e-4, atol=1e-4)
    assert float((x_prev - mean).var()) == pytest.approx(beta_tilde, rel=0.03)


@pytest.mark.parametrize(("steps", "eta"), [(1, 0.0), (3, 0.0), (7, 0.0), (50, 0.0), (50, 1.0), (4, 1.0)])
def test_a_perfect_network_samples_exactly_its_trajectory(steps, eta):
    """With the oracle every step's ``x0`` estimate is exact, so any number of steps ends on ``x0`` (unstandardised)."""
    x0 = torch.randn((2, 3, 8), generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    model = Oracle(TINY, x0)
    model.mean.copy_(torch.tensor([1.0, -2.0, 0.5]))
    model.std.copy_(torch.tensor([2.0, 0.5, 1.0]))
    found = sample_trajectories(model, 2, 8, steps=steps, eta=eta, generator=torch.Generator().manual_seed(9))
    expected = x0.float() * model.std[:, None] + model.mean[:, None]
    torch.testing.assert_close(found, expected, rtol=0, atol=1e-4)
    assert not model.training  # sampling puts the network in eval mode


@pytest.mark.parametrize("steps", [0, 51, 2.0, True])
def test_a_step_count_outside_one_to_the_process_length_is_refused(steps):
    model = build_denoiser(TINY)
    with pytest.raises(ValueError, match=rf"steps={steps!r} must be a whole number from 1 to T = 50\."):
        sample_trajectories(model, 1, 8, steps=steps)


def test_step_embedding_tells_steps_apart():
    t = torch.tensor([0, 1, 2, 500, 999])
    e = step_embedding(t, 32)
    assert e.shape == (5, 32)
    torch.testing.assert_close(e[0], torch.cat([torch.zeros(16), torch.ones(16)]))  # sin 0 = 0, cos 0 = 1
    torch.testing.assert_close(e[1, 0], torch.sin(torch.tensor(1.0)))  # the fastest frequency is 1 radian a step
    distances = torch.cdist(e, e)
    assert float(distances[~torch.eye(5, dtype=torch.bool)].min()) > 0.1  # every pair of steps is distinct


def test_the_step_changes_the_prediction():
    model = random_denoiser()
    x_t = torch.randn((1, 3, 16), generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        assert (model(x_t, torch.tensor([5])) - model(x_t, torch.tensor([45]))).abs().max() > 1e-3


def test_a_fresh_denoiser_predicts_zero_and_keeps_the_shape():
    model = build_denoiser(TINY)
    v = model(torch.randn(2, 3, 16), torch.tensor([3, 40]))
    assert torch.equal(v, torch.zeros(2, 3, 16))  # the last layer starts at zero


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"latent_channels": 0}, r"latent_channels=0 must be a whole number >= 1\."),
        ({"channels": 2.5}, r"channels=2\.5 must be a whole number >= 1\."),
        ({"steps": True}, r"steps=True must be a whole number >= 1\."),
        ({"dilations": (1, 0)}, r"dilations=\(1, 0\): whole numbers >= 1, e\.g\. \(1, 2, 4, 8\)\."),
        ({"dilations": ()}, r"dilations=\(\): whole numbers >= 1"),
    ],
)
def test_config_errors_say_what_to_change(fields, message):
    with pytest.raises(ValueError, match=message):
        DiffusionConfig(**fields)


def test_schedule_and_input_errors():
    with pytest.raises(ValueError, match=r"steps=0 must be a whole number >= 1, e\.g\. 1000\."):
        cosine_alpha_bar(0)
    with pytest.raises(ValueError, match=r"x_t has shape \[2, 4, 16\]; expected \[batch, 3, frames\]\."):
        build_denoiser(TINY)(torch.zeros(2, 4, 16), torch.tensor([1, 2]))


def test_config_round_trips_through_a_checkpoint_dict():
    stored = json.loads(json.dumps(TINY.to_dict()))
    assert stored["dilations"] == [1, 2]
    assert DiffusionConfig.from_dict(stored) == TINY


def test_train_diffusion_standardises_with_the_data_per_channel_statistics():
    generator = torch.Generator().manual_seed(11)
    centres, spreads = torch.tensor([3.0, -1.0, 0.0]), torch.tensor([0.5, 2.0, 4.0])
    train = torch.randn((20, 3, 16), generator=generator) * spreads[:, None] + centres[:, None]
    valid = torch.randn((4, 3, 16), generator=generator)
    model, metrics = train_diffusion(train, valid, TINY, steps=2, live_plot=False, progress=False)
    per_channel = train.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(model.mean, per_channel.mean(1))
    torch.testing.assert_close(model.std, per_channel.std(1))
    assert torch.allclose(model.mean, centres, atol=0.5) and torch.allclose(model.std, spreads, rtol=0.2)
    standard = model.standardise(train).transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(standard.mean(1), torch.zeros(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(standard.std(1), torch.ones(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(model.unstandardise(model.standardise(train)), train)
    assert metrics["steps"] == 2 and metrics["train_loops"] == 20 and not model.training
    assert math.isfinite(metrics["valid_loss"]) and metrics["valid_loss"] > 0
    assert torch.any(model.outp.weight != 0)  # the zero-initialised last layer took gradient steps
