"""coursekit.metrics.active_units: latent dimensions whose posterior mean varies over the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coursekit.metrics import active_units


def test_active_units_counts_dimensions_with_a_varying_mean(rng):
    n = 2000
    scales = torch.tensor([1.0, 0.5, 0.05, 0.0, 0.2])  # standard deviations; variances 1, 0.25, 0.0025, 0, 0.04
    mu = torch.randn(n, 5, generator=rng) * scales + torch.tensor([0.0, 3.0, -1.0, 0.7, 0.0])
    n_active, variances = active_units(mu)
    assert n_active == 3  # dims 0, 1 and 4 exceed 0.01; a constant offset does not count
    np.testing.assert_allclose(variances.numpy(), mu.numpy().var(axis=0), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(variances.numpy(), (scales**2).numpy(), rtol=0.1, atol=1e-3)


def test_active_units_uses_the_population_variance():
    mu = torch.tensor([[0.0, 5.0], [2.0, 5.0]])  # dim 0: values 0 and 2, variance 1 with divisor n
    n_active, variances = active_units(mu)
    assert n_active == 1
    torch.testing.assert_close(variances, torch.tensor([1.0, 0.0]))


def test_active_units_threshold_is_strict_and_adjustable():
    mu = torch.tensor([[-1.0, -0.5, -0.05], [1.0, 0.5, 0.05]])  # variances 1, 0.25 (exact in binary) and 0.0025
    assert active_units(mu)[0] == 2
    assert active_units(mu, threshold=0.25)[0] == 1  # equal to the threshold is not above it
    assert active_units(mu, threshold=0.001)[0] == 3
    assert active_units(mu, threshold=2.0)[0] == 0


def test_active_units_does_not_keep_the_graph(rng):
    mu = torch.randn(10, 3, generator=rng, requires_grad=True)
    assert not active_units(mu)[1].requires_grad


@pytest.mark.parametrize("shape", [(1, 4), (16,), (4, 2, 3)])
def test_active_units_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"expected \[n, latent\] with n >= 2 examples"):
        active_units(torch.zeros(shape))


def test_active_units_rejects_a_negative_threshold():
    with pytest.raises(ValueError, match=r"threshold=-1 must be >= 0"):
        active_units(torch.zeros(3, 2), threshold=-1)
