"""coursekit.models.gan: the spectrogram GAN of lesson 08 (shapes, both objectives against their definitions,
the gradient penalty on a critic with a known gradient, clear errors, and that a tiny GAN learns a target)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from coursekit.models.gan import GANConfig, build_gan, critic_loss, generator_loss, gradient_penalty

TINY = GANConfig(n_freq=8, n_frames=8, z_dim=4, channels=(4, 8))


def test_shapes_of_the_default_gan():
    torch.manual_seed(0)
    model = build_gan()
    images = model.sample(3, torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 256, 64) and 0 < float(images.min()) and float(images.max()) < 1
    assert model.score(images).shape == (3,)


def test_the_wgan_critic_loss_is_the_score_gap_plus_ten_times_the_penalty():
    torch.manual_seed(0)
    model = build_gan(TINY)
    real, fake = torch.rand(6, 1, 8, 8), torch.rand(6, 1, 8, 8)
    parts = critic_loss(model, real, fake, "wgan-gp", generator=torch.Generator().manual_seed(1))
    gp = gradient_penalty(model, real, fake, torch.Generator().manual_seed(1))
    gap = model.score(real).mean() - model.score(fake).mean()
    torch.testing.assert_close(parts["loss"], -gap + 10 * gp)
    torch.testing.assert_close(parts["wasserstein"], gap.detach())
    torch.testing.assert_close(generator_loss(model, fake, "wgan-gp"), -model.score(fake).mean())


def test_the_gradient_penalty_is_zero_for_a_critic_of_unit_slope():
    # a linear critic w.x with |w| = 1 has gradient norm 1 everywhere
    model = build_gan(TINY)
    with torch.no_grad():
        for p in model.critic.parameters():
            p.zero_()
        model.critic[0].weight[0, 0, 1, 1] = 1.0  # first conv: pass pixel (0, 0) through (tap 1, 1: padding 1)
        model.critic[1].negative_slope = 1.0  # make the LeakyReLUs identities
        model.critic[3].negative_slope = 1.0
        model.critic[2].weight[0, 0, 1, 1] = 1.0
        model.critic[-1].weight[0, 0] = 1.0
    real, fake = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    assert float(gradient_penalty(model, real, fake).detach()) == pytest.approx(0.0, abs=1e-10)
    model.critic[-1].weight.data[0, 0] = 3.0
    assert float(gradient_penalty(model, real, fake).detach()) == pytest.approx(4.0)  # (3 - 1)^2


def test_the_smoothed_discriminator_uses_labels_near_0_9_and_0():
    torch.manual_seed(0)
    model = build_gan(TINY)
    real, fake = torch.rand(64, 1, 8, 8), torch.rand(64, 1, 8, 8)
    g = torch.Generator().manual_seed(2)
    loss = critic_loss(model, real, fake, "smoothed", generator=g)["loss"]
    g = torch.Generator().manual_seed(2)
    real_label = 0.9 + 0.1 * (torch.rand(64, generator=g) - 0.5)
    fake_label = 0.1 * torch.rand(64, generator=g)
    assert 0.85 <= float(real_label.min()) and float(real_label.max()) <= 0.95 and float(fake_label.max()) <= 0.1
    expected = (F.binary_cross_entropy_with_logits(model.score(real), real_label)
                + F.binary_cross_entropy_with_logits(model.score(fake), fake_label))  # fmt: skip
    torch.testing.assert_close(loss, expected)
    score = model.score(fake)
    torch.testing.assert_close(generator_loss(model, fake, "smoothed"),
                               F.binary_cross_entropy_with_logits(score, torch.ones_like(score)))  # fmt: skip


def test_bad_input_is_refused_with_the_fix():
    model = build_gan(TINY)
    with pytest.raises(ValueError, match=r"objective='hinge': choose one of \('wgan-gp', 'smoothed'\)"):
        critic_loss(model, torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), "hinge")
    with pytest.raises(ValueError, match=r"z must be \[batch, 4\]"):
        model.generate(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"images must be \[batch, 1, 8, 8\]"):
        model.score(torch.rand(2, 1, 8, 9))
    with pytest.raises(ValueError, match="must be divisible by 4"):
        GANConfig(n_freq=6, n_frames=8, channels=(4, 8))


def test_a_tiny_wgan_moves_its_samples_towards_the_data():
    torch.manual_seed(0)
    model = build_gan(TINY)
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4, :] = 0.9  # the data: the lower half of every image bright
    data = target.repeat(16, 1, 1, 1)
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=2e-3, betas=(0.5, 0.9))
    opt_c = torch.optim.Adam(model.critic.parameters(), lr=2e-3, betas=(0.5, 0.9))
    before = (model.sample(16) - target).abs().mean()
    model.train()
    for _ in range(150):
        for _ in range(3):
            opt_c.zero_grad()
            critic_loss(model, data, model.generate(torch.randn(16, 4)))["loss"].backward()
            opt_c.step()
        opt_g.zero_grad()
        generator_loss(model, model.generate(torch.randn(16, 4))).backward()
        opt_g.step()
    after = (model.sample(16) - target).abs().mean()
    assert after < before / 2
