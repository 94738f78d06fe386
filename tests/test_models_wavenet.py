"""coursekit.models.wavenet: the WaveNet autoencoder of lesson 08 (shapes, causality, the cached sampler
against teacher forcing, the loss against its definition, clear errors, and that it learns a tone)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from coursekit.models.wavenet import WaveNetAEConfig, build_wavenet_ae, wavenet_loss

TINY = WaveNetAEConfig(dilations=(1, 2, 4), channels=8, skip_channels=8, code_channels=2, hop=16,
                       encoder_dilations=(1, 2), classes=16)  # fmt: skip


def test_shapes_and_receptive_field():
    torch.manual_seed(0)
    model = build_wavenet_ae()
    x = 0.3 * torch.randn(2, 1, 1024)
    assert model.encode(x).shape == (2, 16, 2)
    assert model(x).shape == (2, 256, 1024)
    assert model.config.receptive_field == 2 + 1 + 2 + 4 + 8 + 16


def test_the_decoder_is_causal_within_its_receptive_field():
    torch.manual_seed(0)
    model = build_wavenet_ae(TINY).eval()
    code = torch.randn(1, 2, 4)
    classes = torch.randint(16, (1, 1, 64))
    changed = classes.clone()
    changed[..., 40] = (changed[..., 40] + 5) % 16
    before, after = model.decode_logits(classes, code), model.decode_logits(changed, code)
    differs = (before - after).abs().amax(dim=1)[0] > 1e-6
    assert not differs[:41].any()  # position t depends on samples before t only: 40 itself is not seen at 40
    field = TINY.receptive_field  # 9: samples t - 9 to t - 1 reach position t
    assert differs[41] and differs[40 + field] and not differs[41 + field :].any()


def test_the_cached_sampler_computes_exactly_the_teacher_forced_logits():
    torch.manual_seed(0)
    model = build_wavenet_ae(TINY).eval()
    x = 0.5 * torch.sin(torch.arange(2 * 64).view(2, 1, 64) * 0.3)
    code, classes = model.encode(x), model.quantize(x)
    torch.testing.assert_close(model.generate(code, teacher=classes), model.decode_logits(classes, code))


def test_sampling_at_low_temperature_follows_the_most_likely_class():
    torch.manual_seed(0)
    model = build_wavenet_ae(TINY).eval()
    code = torch.randn(1, 2, 2)
    a = model.generate(code, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    b = model.generate(code, temperature=1e-4, generator=torch.Generator().manual_seed(1))
    assert a.shape == (1, 1, 32) and torch.equal(a, b)  # near-greedy: the draw no longer matters
    assert float(a.abs().max()) <= 1.0


def test_the_loss_is_the_cross_entropy_of_the_true_classes():
    torch.manual_seed(0)
    model = build_wavenet_ae(TINY).eval()
    x = 0.4 * torch.randn(3, 1, 32).clamp(-1, 1)
    parts = wavenet_loss(model, {"audio": x})
    logits = model(x)
    target = model.quantize(x)[:, 0]
    torch.testing.assert_close(parts["loss"], F.cross_entropy(logits, target))
    torch.testing.assert_close(parts["accuracy"], (logits.argmax(1) == target).float().mean())


def test_bad_input_is_refused_with_the_fix():
    model = build_wavenet_ae(TINY)
    with pytest.raises(ValueError, match=r"samples a multiple of hop=16, got \[1, 1, 30\]: trim or pad it"):
        model.encode(torch.zeros(1, 1, 30))
    with pytest.raises(ValueError, match=r"dilations=\(\): one whole number >= 1 per layer"):
        WaveNetAEConfig(dilations=())


def test_it_learns_a_tone_far_below_the_uniform_cross_entropy():
    t = torch.arange(4 * 128).view(4, 1, 128)
    x = 0.7 * torch.sin(2 * math.pi * t / 16 + torch.arange(4).view(4, 1, 1))  # one period every 16 samples
    torch.manual_seed(0)
    model = build_wavenet_ae(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        wavenet_loss(model, x)["loss"].backward()
        optimizer.step()
    assert float(wavenet_loss(model.eval(), x)["loss"].detach()) < 0.3 * math.log(16)
