"""coursekit.models.discriminators: lesson 09's multi-scale and multi-period discriminators (shapes, the
period discriminator's column independence) and the GAN objectives (known values, gradients, errors)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from coursekit.models.discriminators import (
    DiscriminatorConfig,
    PeriodDiscriminator,
    build_discriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)

SMALL = 8  # channels of the networks built here (the default is 16; 8 keeps the tests quick)


def judge(kind: str, samples: int, batch: int = 2, **fields):
    torch.manual_seed(0)
    disc = build_discriminator({"kind": kind, "channels": SMALL, **fields})
    with torch.no_grad():
        return disc, disc(0.1 * torch.randn(batch, 1, samples))


def test_multi_scale_judges_the_waveform_at_full_half_and_quarter_rate():
    disc, (scores, features) = judge("msd", 1600)
    assert len(disc.scale_discriminators) == 3 and len(disc.period_discriminators) == 0
    assert len(scores) == len(features) == 3
    # each sub-discriminator divides its input's length by 16 (two stride-4 layers): 1600, 800, 400 samples in
    assert [tuple(s.shape) for s in scores] == [(2, 1, 100), (2, 1, 50), (2, 1, 25)]
    for rate, maps in zip((1, 2, 4), features, strict=True):
        n = 1600 // rate
        assert [tuple(f.shape) for f in maps] == [(2, SMALL, n), (2, 2 * SMALL, n // 4), (2, 4 * SMALL, n // 16),
                                                  (2, 4 * SMALL, n // 16)]  # fmt: skip


def test_multi_period_folds_the_waveform_into_one_column_per_sample_of_the_period():
    disc, (scores, features) = judge("mpd", 2310)  # 2310 = 2 * 3 * 5 * 7 * 11: no padding for any period
    assert [sub.period for sub in disc.period_discriminators] == [2, 3, 5, 7, 11]
    assert len(scores) == len(features) == 5 and all(len(maps) == 4 for maps in features)
    for p, score, maps in zip((2, 3, 5, 7, 11), scores, features, strict=True):
        rows = 2310 // p
        for _ in range(3):  # three layers strided by 3 down the rows (kernel 5, padding 2)
            rows = (rows - 1) // 3 + 1
        assert tuple(score.shape) == (2, 1, rows, p)
        assert [f.shape[1] for f in maps] == [SMALL, 2 * SMALL, 4 * SMALL, 4 * SMALL]
        assert all(f.shape[-1] == p for f in maps)


def test_both_is_the_scales_then_the_periods():
    disc, (scores, features) = judge("both", 2310, batch=1)
    assert len(scores) == len(features) == 3 + 5
    assert [s.dim() for s in scores] == [3, 3, 3, 4, 4, 4, 4, 4]
    assert [s.shape[-1] for s in scores[3:]] == [2, 3, 5, 7, 11]


def test_a_padded_length_still_folds_into_period_columns():
    _, (scores, _) = judge("mpd", 1001, batch=1, periods=(3, 7))  # 1001 = 3 * 333 + 2: one sample reflected in
    assert [s.shape[-1] for s in scores] == [3, 7]
    for rows, score in zip((334, 143), scores, strict=True):  # 1002 / 3 and 1001 / 7 rows
        for _ in range(3):
            rows = (rows - 1) // 3 + 1
        assert score.shape[2] == rows


@pytest.mark.parametrize(("period", "index"), [(3, 0), (3, 100), (5, 242), (7, 6)])
def test_the_period_discriminator_never_mixes_columns(period, index):
    """Changing sample ``i`` changes column ``i % period`` of every feature map and of the score, and no other."""
    torch.manual_seed(0)
    sub = PeriodDiscriminator(period, SMALL)
    x = 0.1 * torch.randn(1, 1, period * 81)  # a multiple of the period: no reflected padding
    moved = x.clone()
    moved[0, 0, index] += 0.5
    with torch.no_grad():
        (score, maps), (score2, maps2) = sub(x), sub(moved)
    for a, b in zip([score, *maps], [score2, *maps2], strict=True):
        change = (a - b).abs().amax(dim=(0, 1, 2))  # [period]: the largest change in each column
        column = index % period
        assert change[column] > 1e-4
        assert torch.all(torch.cat([change[:column], change[column + 1 :]]) == 0)


@pytest.mark.parametrize("objective", ["hinge", "nonsaturating"])
def test_discriminator_loss_known_values(objective):
    shapes = [(2, 1, 10), (2, 1, 5), (2, 1, 4, 3)]  # three sub-discriminators of different shapes
    zeros = [torch.zeros(s) for s in shapes]
    per_sub = 2.0 if objective == "hinge" else 2 * math.log(2)  # hinge: relu(1) + relu(1); bce: 2 softplus(0)
    assert float(discriminator_loss(zeros, zeros, objective)) == pytest.approx(3 * per_sub, rel=1e-6)
    real = [torch.full(s, 2.0) for s in shapes]
    fake = [torch.full(s, -2.0) for s in shapes]
    expected = 0.0 if objective == "hinge" else 6 * math.log1p(math.exp(-2.0))
    assert float(discriminator_loss(real, fake, objective)) == pytest.approx(expected, abs=1e-6)


def test_hinge_discriminator_loss_averages_each_map():
    real = [torch.tensor([[[0.5, 3.0]]])]  # relu(1 - 0.5) = 0.5 and relu(1 - 3) = 0: mean 0.25
    fake = [torch.tensor([[[0.5, -1.0, -4.0, 1.0]]])]  # relu(1 + f) = 1.5, 0, 0, 2: mean 0.875
    assert float(discriminator_loss(real, fake)) == pytest.approx(0.25 + 0.875)


def test_generator_loss_known_values():
    fake = [torch.tensor([[[1.0, 2.0, 3.0]]]), torch.tensor([[[-4.0]]])]
    assert float(generator_loss(fake, "hinge")) == pytest.approx(-2.0 + 4.0)  # minus each map's mean, summed
    zeros = [torch.zeros(2, 1, 7), torch.zeros(2, 1, 3, 2)]
    assert float(generator_loss(zeros, "nonsaturating")) == pytest.approx(2 * math.log(2), rel=1e-6)
    big = [torch.full((1, 1, 4), 30.0)]  # the decoder already fools the discriminator: -log sigmoid(30) ~ 0
    assert float(generator_loss(big, "nonsaturating")) == pytest.approx(0.0, abs=1e-12)


def test_feature_matching_is_the_mean_over_maps_of_the_mean_absolute_difference():
    torch.manual_seed(0)
    real = [[torch.randn(2, 4, 30), torch.randn(2, 8, 7)], [torch.randn(1, 4, 5, 3)]]
    same = [[f.clone() for f in maps] for maps in real]
    assert float(feature_matching_loss(real, same)) == 0.0
    offsets = [[0.1, -0.5], [0.3]]  # each map's mean |difference|, averaged over the 3 maps regardless of size
    fake = [[f + o for f, o in zip(maps, offs, strict=True)] for maps, offs in zip(real, offsets, strict=True)]
    assert float(feature_matching_loss(real, fake)) == pytest.approx((0.1 + 0.5 + 0.3) / 3, rel=1e-5)


def test_feature_matching_pulls_only_the_fake_features():
    real = [[torch.zeros(1, 2, 5, requires_grad=True)], [torch.zeros(1, 1, 4, requires_grad=True)]]
    fake = [[torch.full((1, 2, 5), 1.0, requires_grad=True)], [torch.full((1, 1, 4), -1.0, requires_grad=True)]]
    feature_matching_loss(real, fake).backward()
    assert real[0][0].grad is None and real[1][0].grad is None  # detached: the discriminator is not moved
    # d/df of |r - f|.mean() / 2 maps = sign(f - r) / (numel * 2)
    torch.testing.assert_close(fake[0][0].grad, torch.full((1, 2, 5), 1 / (10 * 2)))
    torch.testing.assert_close(fake[1][0].grad, torch.full((1, 1, 4), -1 / (4 * 2)))


def test_feature_matching_refuses_mismatched_lists():
    with pytest.raises(ValueError, match="zip"):
        feature_matching_loss([[torch.zeros(1)], [torch.zeros(1)]], [[torch.zeros(1)]])


@pytest.mark.parametrize("function", ["discriminator", "generator"])
def test_an_unknown_objective_is_refused(function):
    scores = [torch.zeros(1, 1, 3)]
    with pytest.raises(ValueError, match=r"objective='wgan': use one of \['hinge', 'nonsaturating'\]\."):
        if function == "discriminator":
            discriminator_loss(scores, scores, "wgan")
        else:
            generator_loss(scores, "wgan")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "pgd"}, r"kind='pgd': use one of \['msd', 'mpd', 'both'\]\."),
        ({"channels": 6}, r"channels=6 must be divisible by 4 \(grouped convolutions\), e\.g\. 16\."),
        ({"channels": 0}, r"channels=0 must be a whole number >= 1\."),
        ({"scales": True}, r"scales=True must be a whole number >= 1\."),
        ({"periods": (2, 1)}, r"periods=\(2, 1\): give whole numbers >= 2, e\.g\. \(2, 3, 5, 7, 11\)\."),
        ({"periods": ()}, r"periods=\(\): give whole numbers >= 2"),
    ],
)
def test_config_errors_say_what_to_change(fields, message):
    with pytest.raises(ValueError, match=message):
        DiscriminatorConfig(**fields)


def test_config_round_trips_through_a_checkpoint_dict():
    config = DiscriminatorConfig(kind="mpd", channels=8, scales=2, periods=[3, 5])
    assert config.periods == (3, 5)
    stored = json.loads(json.dumps(config.to_dict()))
    assert stored["periods"] == [3, 5]
    assert DiscriminatorConfig.from_dict(stored) == config


@pytest.mark.parametrize(
    ("x", "shape"),
    [(torch.zeros(2, 1600), r"\[2, 1600\]"), (torch.zeros(2, 2, 1600), r"\[2, 2, 1600\]"),
     (torch.zeros(2, 1, 1600, dtype=torch.long), r"\[2, 1, 1600\]"), ([0.0] * 10, "list")],
)  # fmt: skip
def test_audio_of_the_wrong_shape_is_refused(x, shape):
    disc = build_discriminator({"kind": "msd", "channels": 4, "scales": 1})
    with pytest.raises(ValueError, match=rf"x has shape {shape}; expected float audio \[batch, 1, samples\]"):
        disc(x)


def sine_clips(n: int, samples: int, seed: int) -> torch.Tensor:
    """``n`` clips ``[n, 1, samples]`` of sines at 110-880 Hz, random phase, peak 0.5 (cheap stand-ins for audio)."""
    generator = torch.Generator().manual_seed(seed)
    hz = 110 * 2 ** (3 * torch.rand((n, 1, 1), generator=generator))
    phase = 2 * math.pi * torch.rand((n, 1, 1), generator=generator)
    return 0.5 * torch.sin(2 * math.pi * hz * torch.arange(samples) / 16000 + phase)


@pytest.fixture
def fine_tuning(monkeypatch):
    """Run :func:`fine_tune_decoder` on a tiny freshly built network and hand-made clips, with ``measure`` stubbed."""
    from coursekit.models.audio_vae import AudioVAEConfig, build_audio_vae
    from coursekit.recipes import adversarial

    measured = []

    def measure(model, clips):  # the referee is tested with lesson 05; here only its place in the loop matters
        measured.append(model)
        return {"ratio_notes": 0.5 + len(measured), "ratio_loops": 0.25}

    monkeypatch.setattr(adversarial, "measure", measure)
    monkeypatch.setattr(adversarial, "FT_BATCH", 2)  # 8 in the recipe; 2 keeps this test quick on a CPU
    clips = {"train": sine_clips(4, adversarial.FT_CROP + 800, 0), "test_notes": sine_clips(2, 1024, 1),
             "test_loops": sine_clips(2, 1024, 2)}  # fmt: skip

    def run(kind, objective="hinge"):
        torch.manual_seed(0)
        first = build_audio_vae(AudioVAEConfig(strides=(2, 4), channels=(8, 16), latent_channels=4, dilations=(1,)))
        before = {name: p.detach().clone() for name, p in first.named_parameters()}
        model, metrics = adversarial.fine_tune_decoder(first, kind, objective, steps=2, mark=1, clips=clips,
                                                        progress=False)  # fmt: skip
        return before, model, metrics, measured

    return run


@pytest.mark.parametrize(("kind", "objective"), [("msd", "hinge"), ("mpd", "nonsaturating")])
def test_fine_tuning_moves_only_the_decoder(fine_tuning, kind, objective):
    before, model, metrics, measured = fine_tuning(kind, objective)
    after = dict(model.named_parameters())
    for name, value in before.items():
        if name.startswith("encoder."):
            assert torch.equal(after[name], value), f"{name} moved: the encoder is frozen"
    moved = [name for name, value in before.items() if not torch.equal(after[name], value)]
    assert moved and all(name.startswith("decoder.") for name in moved)
    assert len(moved) == len([name for name in before if name.startswith("decoder.")])  # every decoder tensor
    assert [mark["step"] for mark in metrics["marks"]] == [0, 1, 2]
    assert [mark["ratio_notes"] for mark in metrics["marks"]] == [1.5, 2.5, 3.5]  # measured at each mark, in order
    assert len(measured) == 3 and all(m is model for m in measured)  # the network being tuned, in place
    assert set(metrics["marks"][0]) == {"step", "ratio_notes", "ratio_loops", "time_s"}  # before any step: no losses
    for mark in metrics["marks"][1:]:
        assert {"recon", "discriminator", "adversarial", "feature_matching"} <= set(mark)
        assert mark["discriminator"] > 0 and mark["feature_matching"] > 0
    expected = sum(p.numel() for p in build_discriminator({"kind": kind}).parameters())
    assert metrics["discriminator_parameters"] == expected > 0
    assert metrics["decoder_parameters"] == sum(p.numel() for p in model.decoder.parameters())
    assert metrics["kind"] == kind and metrics["objective"] == objective and metrics["steps"] == 2
    assert metrics["batch"] == 2 and not model.training


def test_the_control_fine_tuning_has_no_discriminator(fine_tuning):
    before, model, metrics, _ = fine_tuning(None)
    assert metrics["discriminator_parameters"] == 0 and metrics["kind"] is None and metrics["objective"] is None
    assert [mark["step"] for mark in metrics["marks"]] == [0, 1, 2]
    for mark in metrics["marks"][1:]:
        assert "recon" in mark and not {"discriminator", "adversarial", "feature_matching"} & set(mark)
    decoder = [name for name in before if name.startswith("decoder.")]
    assert all(not torch.equal(model.get_parameter(name), before[name]) for name in decoder)
    assert all(torch.equal(model.get_parameter(name), before[name]) for name in before if name not in decoder)


def test_the_marks_hold_lesson_05s_referee_ratios_before_and_after(monkeypatch):
    """Unstubbed: mark 0 is ``measure`` of the network as given, the last mark ``measure`` of the tuned one."""
    import copy

    from coursekit.models.audio_vae import AudioVAEConfig, build_audio_vae
    from coursekit.recipes import adversarial
    from coursekit.recipes.waveform_vae import measure

    monkeypatch.setattr(adversarial, "FT_BATCH", 2)
    clips = {"train": sine_clips(4, adversarial.FT_CROP + 800, 0), "test_notes": sine_clips(3, 4096, 1),
             "test_loops": sine_clips(3, 4096, 2)}  # fmt: skip
    torch.manual_seed(0)
    first = build_audio_vae(AudioVAEConfig(strides=(2, 4), channels=(8, 16), latent_channels=4, dilations=(1,)))
    untouched = measure(copy.deepcopy(first), clips)
    model, metrics = adversarial.fine_tune_decoder(first, None, steps=1, mark=1, clips=clips, progress=False)
    tuned = measure(model, clips)
    for mark, expected in zip(metrics["marks"], (untouched, tuned), strict=True):
        for key in ("ratio_notes", "ratio_loops"):
            assert mark[key] == pytest.approx(expected[key], abs=6e-5)  # rounded to 4 decimals
    assert tuned != untouched  # one step of the decoder changed its reconstructions
