"""coursekit.losses: KL terms, Gaussian and Bernoulli NLLs, the ELBO and the beta warm-up."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal

from coursekit import losses


def _posterior(rng, batch=4, latent=3):
    mu = torch.randn(batch, latent, generator=rng, dtype=torch.float64)
    logvar = torch.randn(batch, latent, generator=rng, dtype=torch.float64)
    return mu, logvar


# ----------------------------------------------------------------------------- KL
def test_kl_normal_matches_the_closed_form_written_with_the_standard_deviation(rng):
    mu, logvar = _posterior(rng)
    sigma = np.exp(0.5 * logvar.numpy())
    # KL(N(m, s^2) || N(0, 1)) = log(1 / s) + (s^2 + m^2) / 2 - 1 / 2
    expected = np.log(1 / sigma) + (sigma**2 + mu.numpy() ** 2) / 2 - 0.5
    np.testing.assert_allclose(losses.kl_normal(mu, logvar).numpy(), expected, rtol=1e-12)


def test_kl_normal_matches_torch_distributions(rng):
    mu, logvar = _posterior(rng)
    expected = torch.distributions.kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    torch.testing.assert_close(losses.kl_normal(mu, logvar), expected)


def test_kl_normal_matches_a_monte_carlo_estimate():
    gen = torch.Generator().manual_seed(0)
    mu = torch.tensor([0.0, 1.5, -0.7], dtype=torch.float64)
    logvar = torch.tensor([0.8, -1.0, 0.3], dtype=torch.float64)
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, 3, generator=gen, dtype=torch.float64)
    log_ratio = q.log_prob(z) - p.log_prob(z)  # KL = E_q[log q(z) - log p(z)]
    standard_error = log_ratio.std(dim=0) / math.sqrt(len(z))
    error = (log_ratio.mean(dim=0) - losses.kl_normal(mu[None], logvar[None])[0]).abs()
    assert (error < 4 * standard_error).all(), (error, standard_error)


def test_kl_is_exactly_zero_when_the_posterior_is_the_prior():
    zeros = torch.zeros(5, 7)
    assert torch.equal(losses.kl_normal(zeros, zeros), zeros)
    assert losses.kl_divergence(zeros, zeros).item() == 0.0


def test_kl_divergence_sums_latent_dims_and_averages_the_batch():
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.zeros(2, 2)
    # with unit variance each dim contributes mu^2 / 2: examples give 0.5 and 2.0, mean 1.25
    assert losses.kl_divergence(mu, logvar).item() == pytest.approx(1.25)
    assert losses.kl_divergence(mu, logvar).shape == ()


def test_kl_divergence_accepts_latent_sequences(rng):
    mu, logvar = torch.randn(2, 3, 4, 5, generator=rng).unbind(0)
    expected = losses.kl_normal(mu, logvar).sum(dim=(1, 2)).mean()
    torch.testing.assert_close(losses.kl_divergence(mu, logvar), expected)


def test_kl_gradients_are_the_analytic_derivatives(rng):
    mu, logvar = _posterior(rng, batch=4)
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    losses.kl_divergence(mu, logvar).backward()
    # d/dmu = mu / batch, d/dlogvar = (exp(logvar) - 1) / 2 / batch
    torch.testing.assert_close(mu.grad, mu.detach() / 4)
    torch.testing.assert_close(logvar.grad, (logvar.detach().exp() - 1) / 2 / 4)


def test_kl_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"mu has shape \[2, 3\] but logvar has \[2, 4\]"):
        losses.kl_normal(torch.zeros(2, 3), torch.zeros(2, 4))


def test_kl_rejects_integer_tensors():
    with pytest.raises(TypeError, match=r"mu must be a float tensor, got torch.int64: use mu.float\(\)"):
        losses.kl_divergence(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))


# ----------------------------------------------------------------------------- likelihoods
def test_bernoulli_nll_matches_binary_cross_entropy_on_probabilities(rng):
    logits = 3 * torch.randn(6, 1, 28, 28, generator=rng, dtype=torch.float64)
    x = torch.rand(6, 1, 28, 28, generator=rng, dtype=torch.float64)  # grey levels, not only 0/1
    expected = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum") / 6
    torch.testing.assert_close(losses.bernoulli_nll(logits, x), expected)


def test_bernoulli_nll_of_a_coin_flip_is_log_2_per_pixel():
    x = torch.randint(0, 2, (3, 10), generator=torch.Generator().manual_seed(0)).float()
    assert losses.bernoulli_nll(torch.zeros(3, 10), x).item() == pytest.approx(10 * math.log(2), rel=1e-6)


def test_bernoulli_nll_is_stable_for_large_logits():
    logits = torch.tensor([[200.0, -200.0]])
    assert losses.bernoulli_nll(logits, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.bernoulli_nll(logits, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(400.0)


@pytest.mark.parametrize("bad", [-0.1, 1.5, 255.0])
def test_bernoulli_nll_rejects_x_outside_0_1(bad):
    x = torch.zeros(2, 4)
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r"a Bernoulli likelihood needs \[0, 1\]: scale images with x / 255"):
        losses.bernoulli_nll(torch.zeros(2, 4), x)


@pytest.mark.parametrize("logvar", [0.0, -1.3, "tensor"])
def test_gaussian_nll_matches_normal_log_prob(rng, logvar):
    x, x_hat = torch.randn(2, 5, 1, 8, 8, generator=rng, dtype=torch.float64).unbind(0)
    if logvar == "tensor":  # a per-pixel variance that broadcasts over the batch
        logvar = torch.randn(1, 1, 8, 8, generator=rng, dtype=torch.float64)
    std = torch.exp(0.5 * torch.as_tensor(logvar, dtype=torch.float64))
    expected = -Normal(x_hat, std).log_prob(x).sum() / 5
    torch.testing.assert_close(losses.gaussian_nll(x, x_hat, logvar), expected)


def test_gaussian_nll_of_a_perfect_reconstruction_is_the_constant():
    x = torch.rand(4, 10, generator=torch.Generator().manual_seed(0))
    assert losses.gaussian_nll(x, x.clone()).item() == pytest.approx(10 * 0.5 * math.log(2 * math.pi))


def test_likelihoods_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"x has shape \[2, 1, 28, 28\] but x_hat has \[2, 784\]: .*reshape"):
        losses.gaussian_nll(torch.zeros(2, 1, 28, 28), torch.zeros(2, 784))
    with pytest.raises(ValueError, match=r"logits has shape \[2, 784\] but x has \[2, 1, 28, 28\]"):
        losses.bernoulli_nll(torch.zeros(2, 784), torch.zeros(2, 1, 28, 28))


# ----------------------------------------------------------------------------- ELBO
@pytest.fixture
def vae_outputs(rng):
    x = (torch.rand(4, 1, 28, 28, generator=rng) > 0.5).float()
    logits = torch.randn(4, 1, 28, 28, generator=rng)
    mu, logvar = torch.randn(2, 4, 3, generator=rng).unbind(0)
    return x, logits, mu, logvar


@pytest.mark.parametrize("beta", [0.0, 0.25, 1.0, 4.0])
def test_elbo_parts_add_up(vae_outputs, beta):
    x, logits, mu, logvar = vae_outputs
    parts = losses.elbo_loss(x, logits, mu, logvar, beta=beta)
    assert set(parts) == {"loss", "recon", "kl"}
    torch.testing.assert_close(parts["recon"], losses.bernoulli_nll(logits, x))
    torch.testing.assert_close(parts["kl"], losses.kl_divergence(mu, logvar))
    torch.testing.assert_close(parts["loss"], parts["recon"] + beta * parts["kl"])


def test_elbo_with_a_gaussian_likelihood_uses_unit_variance(vae_outputs):
    x, mean, mu, logvar = vae_outputs
    parts = losses.elbo_loss(x, mean, mu, logvar, likelihood="gaussian")
    expected_recon = -Normal(mean, 1.0).log_prob(x).sum() / 4
    torch.testing.assert_close(parts["recon"], expected_recon)
    torch.testing.assert_close(parts["loss"], expected_recon + losses.kl_divergence(mu, logvar))


def test_elbo_gradients_reach_every_input(vae_outputs):
    x, logits, mu, logvar = vae_outputs
    inputs = [t.clone().requires_grad_(True) for t in (logits, mu, logvar)]
    losses.elbo_loss(x, *inputs)["loss"].backward()
    for tensor in inputs:
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0
    # d recon / d logits = (sigmoid(logits) - x) / batch
    torch.testing.assert_close(inputs[0].grad, (torch.sigmoid(logits) - x) / 4)


def test_elbo_rejects_an_unknown_likelihood(vae_outputs):
    with pytest.raises(ValueError, match=r"likelihood='poisson' is not known: use one of \['bernoulli', 'gaussian'\]"):
        losses.elbo_loss(*vae_outputs, likelihood="poisson")


@pytest.mark.parametrize("beta", [-0.5, float("nan"), "1"])
def test_elbo_rejects_a_bad_beta(vae_outputs, beta):
    with pytest.raises(ValueError, match=r"beta=.* must be a finite number >= 0"):
        losses.elbo_loss(*vae_outputs, beta=beta)


def test_elbo_rejects_mismatched_batches(vae_outputs):
    x, logits, mu, logvar = vae_outputs
    with pytest.raises(ValueError, match=r"x has a batch of 4 but mu has 3"):
        losses.elbo_loss(x, logits, mu[:3], logvar[:3])
    with pytest.raises(ValueError, match=r"mu has shape \[4, 3\] but logvar has \[4, 2\]"):
        losses.elbo_loss(x, logits, mu, logvar[:, :2])


def test_elbo_rejects_pixels_outside_0_1_for_bernoulli(vae_outputs):
    x, logits, mu, logvar = vae_outputs
    with pytest.raises(ValueError, match=r"x has values in \[0, 255\] but a Bernoulli likelihood needs \[0, 1\]"):
        losses.elbo_loss(255 * x, logits, mu, logvar)


# ----------------------------------------------------------------------------- beta warm-up
@pytest.mark.parametrize(
    ("step", "warmup_steps", "beta_max", "expected"),
    [(0, 4, 1.0, 0.0), (1, 4, 1.0, 0.25), (2, 4, 2.0, 1.0), (4, 4, 1.0, 1.0), (100, 4, 0.5, 0.5), (0, 0, 3.0, 3.0)],
)
def test_beta_warmup_values(step, warmup_steps, beta_max, expected):
    assert losses.beta_warmup(step, warmup_steps, beta_max) == pytest.approx(expected)


def test_beta_warmup_rises_linearly_then_stays():
    betas = [losses.beta_warmup(s, 10) for s in range(20)]
    np.testing.assert_allclose(np.diff(betas[:11]), 0.1)
    assert betas[10:] == [1.0] * 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 10), r"step=-1 must be a whole number >= 0"),
        ((0, -5), r"warmup_steps=-5 must be a whole number >= 0"),
        ((0, 2.5), r"warmup_steps=2.5 must be a whole number >= 0"),
        ((0, 10, -1.0), r"beta_max=-1.0 must be a finite number >= 0"),
    ],
)
def test_beta_warmup_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        losses.beta_warmup(*args)


# ----------------------------------------------------------------------------- MMD with the IMQ kernel
def test_mmd_imq_matches_a_direct_double_sum():
    from coursekit.losses import mmd_imq

    g = torch.Generator().manual_seed(0)
    z, p = torch.randn(4, 3, generator=g), torch.randn(5, 3, generator=g)

    def k(a, b, c):
        return c / (c + float(((a - b) ** 2).sum()))

    expected = 0.0
    for s in (0.5, 2.0):
        c = 2 * 3 * s
        expected += sum(k(z[i], z[j], c) for i in range(4) for j in range(4) if i != j) / 12
        expected += sum(k(p[i], p[j], c) for i in range(5) for j in range(5) if i != j) / 20
        expected -= 2 * sum(k(z[i], p[j], c) for i in range(4) for j in range(5)) / 20
    assert float(mmd_imq(z, p, scales=(0.5, 2.0))) == pytest.approx(expected, rel=1e-5)


def test_mmd_imq_is_zero_in_expectation_for_prior_codes_and_grows_with_a_shift():
    from coursekit.losses import mmd_imq

    g = torch.Generator().manual_seed(1)
    same = torch.stack([mmd_imq(torch.randn(64, 8, generator=g), generator=g) for _ in range(40)])
    shifted = [float(mmd_imq(torch.randn(64, 8, generator=g) + shift, generator=g)) for shift in (0.5, 1.0, 2.0)]
    assert abs(float(same.mean())) < 3 * float(same.std()) / 40**0.5  # unbiased: the mean is within noise of 0
    assert float(same.min()) < 0 < shifted[0] < shifted[1] < shifted[2]  # one draw can dip below 0


def test_mmd_imq_pulls_codes_towards_the_prior_and_refuses_bad_shapes():
    from coursekit.losses import mmd_imq

    z = (torch.randn(32, 4, generator=torch.Generator().manual_seed(2)) + 3.0).requires_grad_(True)
    mmd_imq(z, generator=torch.Generator().manual_seed(3)).backward()
    assert float(z.grad.mean()) > 0  # descending the gradient moves the codes from +3 towards 0
    with pytest.raises(ValueError, match=r"z has shape \[32\]; expected \[n >= 2, d\]"):
        mmd_imq(torch.zeros(32))
    with pytest.raises(ValueError, match=r"prior has shape \[8, 3\]; expected \[m >= 2, 4\] like z"):
        mmd_imq(torch.zeros(8, 4), torch.zeros(8, 3))
    with pytest.raises(ValueError, match="give one or more positive kernel widths"):
        mmd_imq(torch.zeros(8, 4), scales=(0.0,))


def test_multi_resolution_spectral_distance_agrees_with_auraloss_log_magnitude_term():
    """auraloss pads the edges by reflection and floors |X|^2 at 1e-8 (|X| at 1e-4) where coursekit pads with
    zeros and adds eps: with eps = 1e-4 on 4 s of noise they agree within 0.5 %."""
    import auraloss

    from coursekit import audio

    g = torch.Generator().manual_seed(4)
    x, y = 0.3 * torch.randn(2, 1, 64000, generator=g), 0.3 * torch.randn(2, 1, 64000, generator=g)
    sizes = [1024, 512, 256, 128]
    referee = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes], win_lengths=sizes, w_sc=0.0, w_log_mag=1.0, w_lin_mag=0.0
    )
    ours = audio.multi_resolution_spectral_distance(x, y, n_ffts=tuple(sizes), eps=1e-4)
    assert float(ours) == pytest.approx(float(referee(x, y)), rel=5e-3)
    assert float(audio.multi_resolution_spectral_distance(x, x, n_ffts=tuple(sizes))) == 0.0


def test_kl_gaussians_matches_torch_distributions_and_is_zero_for_equal_gaussians(rng):
    mu_q, logvar_q, mu_p, logvar_p = (torch.randn(4, 3, 5, generator=rng) for _ in range(4))
    q, p = Normal(mu_q, (0.5 * logvar_q).exp()), Normal(mu_p, (0.5 * logvar_p).exp())
    expected = torch.distributions.kl_divergence(q, p)
    torch.testing.assert_close(losses.kl_gaussians(mu_q, logvar_q, mu_p, logvar_p), expected)
    assert float(losses.kl_gaussians(mu_q, logvar_q, mu_q, logvar_q).abs().max()) < 1e-6
    torch.testing.assert_close(losses.kl_gaussians(mu_q, logvar_q, torch.zeros_like(mu_q), torch.zeros_like(mu_q)),
                               losses.kl_normal(mu_q, logvar_q))  # fmt: skip
    with pytest.raises(ValueError, match=r"mu_q has shape \[4, 3, 5\] but logvar_p has \[4, 3\]"):
        losses.kl_gaussians(mu_q, logvar_q, mu_p, logvar_p[..., 0])


def test_multi_resolution_spectral_convergence_agrees_with_auraloss_and_weighs_loud_bins():
    import auraloss

    from coursekit import audio

    g = torch.Generator().manual_seed(5)
    x, y = 0.3 * torch.randn(2, 1, 64000, generator=g), 0.3 * torch.randn(2, 1, 64000, generator=g)
    sizes = [1024, 512, 256, 128]
    referee = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes], win_lengths=sizes, w_sc=1.0, w_log_mag=0.0, w_lin_mag=0.0
    )
    ours = audio.multi_resolution_spectral_convergence(x, y, n_ffts=tuple(sizes))
    assert float(ours) == pytest.approx(float(referee(x, y)), rel=5e-3)
    assert float(audio.multi_resolution_spectral_convergence(y, y)) == 0.0
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * torch.pi * 440 * t).view(1, 1, -1)
    hiss = 1e-3 * torch.randn(1, 1, 16000, generator=g)
    assert float(audio.multi_resolution_spectral_convergence(tone + hiss, tone)) < 0.01  # quiet bins barely count
    assert float(audio.multi_resolution_spectral_distance(tone + hiss, tone)) > 1.0  # ... unlike on a log scale
