"""coursekit.models.family: the instrument-family classifier of lesson 08 (shapes, gradients, config round
trip, clear errors, and that it learns to tell two kinds of sound apart)."""

from __future__ import annotations

import math

import pytest
import torch

from coursekit.models.family import FamilyClassifierConfig, build_family_classifier, family_loss

TINY = FamilyClassifierConfig(channels=(4, 8), n_mels=16, n_families=2)


@pytest.mark.parametrize("samples", [3840, 16000, 24000])
def test_embeddings_and_logits_have_the_configured_sizes_for_any_length(samples):
    torch.manual_seed(0)
    model = build_family_classifier().eval()
    x = 0.1 * torch.randn(3, 1, samples)
    assert model.embed(x).shape == (3, 64)
    assert model(x).shape == (3, 11)
    assert model.log_mel(x).shape == (3, 1, 64, samples // 256 + 1)


def test_gradients_reach_the_first_convolution():
    torch.manual_seed(0)
    model = build_family_classifier(TINY)
    family_loss(model, {"audio": torch.randn(4, 1, 4096), "family": torch.tensor([0, 1, 0, 1])})["loss"].backward()
    assert model.blocks[0].weight.grad.abs().sum() > 0


def test_the_config_round_trips_through_its_dict():
    config = FamilyClassifierConfig(channels=(8, 16, 32), n_mels=32)
    model = build_family_classifier(config.to_dict())
    assert model.config == config and model.embed(torch.randn(1, 1, 4096)).shape == (1, 32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"channels": ()}, r"channels=\(\): one whole number >= 1 per block"),
     ({"channels": (8, 0)}, r"channels=\(8, 0\)"),
     ({"n_families": 1}, r"n_families=1 must be a whole number >= 2")],
)  # fmt: skip
def test_bad_configs_are_refused_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FamilyClassifierConfig(**kwargs)


def test_audio_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"x must be audio \[batch, 1, samples >= 768\] at 16000 Hz"):
        build_family_classifier(TINY)(torch.randn(2, 16000))
    with pytest.raises(ValueError, match=r"samples >= 3840\] at 16000 Hz: \[1, 1, 3839\]"):
        build_family_classifier()(torch.randn(1, 1, 3839))


def test_family_loss_reports_the_batch_accuracy():
    torch.manual_seed(0)
    model = build_family_classifier(TINY).eval()
    x = torch.randn(6, 1, 4096)
    predicted = model.predict(x)
    parts = family_loss(model, {"audio": x, "family": predicted})
    assert float(parts["accuracy"]) == 1.0
    assert float(family_loss(model, {"audio": x, "family": 1 - predicted})["accuracy"]) == 0.0


def test_it_learns_to_tell_tones_from_noise():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(4096) / 16000
    tones = torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in torch.linspace(200, 2000, 16).tolist()])
    noise = 0.3 * torch.randn(16, 4096, generator=g)
    x = torch.cat([tones, noise]).unsqueeze(1)
    family = torch.cat([torch.zeros(16), torch.ones(16)]).long()
    torch.manual_seed(0)
    model = build_family_classifier(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        family_loss(model, {"audio": x, "family": family})["loss"].backward()
        optimizer.step()
    assert (model.predict(x) == family).float().mean() == 1.0
    assert model.embeddings(x).shape == (32, 8)
