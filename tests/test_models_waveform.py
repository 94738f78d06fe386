"""coursekit.models.waveform: the raw-waveform VAEs of lesson 03, their loss, and attention memory."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from coursekit import synth
from coursekit.losses import gaussian_nll, kl_divergence
from coursekit.models.waveform import WaveformVAE, WaveformVAEConfig, attention_memory_bytes, waveform_vae_loss

KINDS = ["linear", "conv"]
VARIANCES = ["fixed", "isotropic", "diagonal"]
SMALL = {
    "linear": {"kind": "linear", "n_samples": 200, "hidden": 32, "latent_dim": 4},
    "conv": {"kind": "conv", "n_samples": 250, "channels": (4, 8), "stride": 5, "kernel_size": 9, "latent_dim": 4},
}


def _model(kind: str, variance: str = "isotropic", seed: int = 0, **fields) -> WaveformVAE:
    torch.manual_seed(seed)
    return WaveformVAE(WaveformVAEConfig(**{**SMALL[kind], "variance": variance, **fields}))


def _windows(n_samples: int, batch: int = 6, amp: float = 0.3) -> torch.Tensor:
    """``batch`` different sines at 1 kHz: Tensor [batch, 1, n_samples]."""
    tones = [synth.sine(20 + 15 * i, n_samples / 1000, 1000, amp=amp, phase=0.7 * i) for i in range(batch)]
    return torch.stack(tones).unsqueeze(1)


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("variance", VARIANCES)
@pytest.mark.parametrize("kind", KINDS)
def test_encode_decode_forward_shapes(kind, variance):
    model = _model(kind, variance)
    n = SMALL[kind]["n_samples"]
    x = _windows(n, batch=3)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 4)
    assert model.decode(mu).shape == (3, 1, n)
    mean, mu2, logvar2 = model(x, generator=torch.Generator().manual_seed(0))
    assert mean.shape == (3, 1, n)
    torch.testing.assert_close((mu2, logvar2), (mu, logvar))
    # the decoder's mean of the sampled z, not of mu: forward decodes mu + sigma * eps
    eps = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mean, model.decode(mu + torch.exp(0.5 * logvar) * eps))


@pytest.mark.parametrize(
    ("n_samples", "stride", "channels", "kernel_size"),
    [
        (1000, 10, (8, 8), 9),  # kernel a sample shorter than the stride
        (250, 5, (4, 8), 3),  # kernel much shorter than the stride
        (64, 2, (4, 4, 4), 4),  # even kernel, even stride
        (96, 4, (3, 5), 7),  # odd kernel, even stride
        (30, 1, (4,), 5),  # stride 1 keeps the length
    ],
)
def test_conv_lengths_divide_by_the_stride_and_come_back(n_samples, stride, channels, kernel_size):
    config = WaveformVAEConfig(
        kind="conv", n_samples=n_samples, stride=stride, channels=channels, kernel_size=kernel_size, latent_dim=3
    )
    model = WaveformVAE(config)
    short = n_samples // stride ** len(channels)
    x = _windows(n_samples, batch=2)
    lengths = []
    h = x
    for layer in model.encoder:
        h = layer(h)
        if isinstance(layer, nn.Conv1d):
            lengths.append(h.shape[-1])
    assert lengths == [n_samples // stride**i for i in range(1, len(channels) + 1)]
    assert model.to_mu.in_features == channels[-1] * short
    assert model(x)[0].shape == (2, 1, n_samples)


def test_the_default_conv_config_goes_3000_600_120_24():
    model = WaveformVAE(WaveformVAEConfig())
    widths = [(m.out_channels, m.kernel_size[0], m.stride[0]) for m in model.encoder if isinstance(m, nn.Conv1d)]
    assert widths == [(16, 9, 5), (32, 9, 5), (64, 9, 5)]
    assert model.to_mu.in_features == 64 * 24
    assert model.decode(torch.zeros(2, 16)).shape == (2, 1, 3000)


def test_config_round_trips_through_json():
    config = WaveformVAEConfig(kind="conv", n_samples=1000, stride=10, channels=(8, 8), variance="diagonal")
    stored = json.loads(json.dumps(config.to_dict()))
    assert stored["channels"] == [8, 8] and stored["variance"] == "diagonal"
    assert WaveformVAEConfig(**stored) == config


# ----------------------------------------------------------------------------- the output variance
@pytest.mark.parametrize(("variance", "shape"), [("fixed", ()), ("isotropic", (1, 1, 1)), ("diagonal", (1, 1, 200))])
@pytest.mark.parametrize("output_sigma", [1.0, 0.1])
def test_output_log_variance_shape_and_initial_value(variance, shape, output_sigma):
    model = _model("linear", variance, output_sigma=output_sigma)
    logvar = model.output_log_variance()
    assert logvar.shape == shape
    torch.testing.assert_close(logvar, torch.full(shape, 2 * math.log(output_sigma)))


@pytest.mark.parametrize("variance", VARIANCES)
def test_output_variance_is_trainable_only_when_learned(variance):
    model = _model("conv", variance)
    parameters = {id(p) for p in model.parameters()}
    learned = variance != "fixed"
    assert (id(model.output_log_variance()) in parameters) == learned
    assert isinstance(model.output_log_variance(), nn.Parameter) == learned
    assert model.output_log_variance().requires_grad == learned
    assert ("output_logvar" in dict(model.named_buffers())) == (not learned)
    assert "output_logvar" in model.state_dict()  # saved with the weights either way


# ----------------------------------------------------------------------------- the loss
def _randomise_output_variance(model: WaveformVAE) -> None:
    with torch.no_grad():
        logvar = model.output_log_variance()
        logvar.copy_(torch.randn(logvar.shape, generator=torch.Generator().manual_seed(5)) - 1)


@pytest.mark.parametrize("beta", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("variance", VARIANCES)
@pytest.mark.parametrize("kind", KINDS)
def test_loss_parts_are_the_gaussian_nll_kl_mse_and_sigma_of_one_sample(kind, variance, beta):
    model = _model(kind, variance)
    _randomise_output_variance(model)
    x = _windows(SMALL[kind]["n_samples"], batch=4)
    torch.manual_seed(11)
    parts = waveform_vae_loss(model, {"audio": x}, beta=beta)
    torch.manual_seed(11)
    mean, mu, logvar = model(x)
    output_logvar = model.output_log_variance().detach()

    assert set(parts) == {"loss", "recon", "kl", "mse", "sigma"}
    assert all(value.shape == () for value in parts.values())
    torch.testing.assert_close(parts["loss"], parts["recon"] + beta * parts["kl"])
    torch.testing.assert_close(parts["recon"], gaussian_nll(x, mean, output_logvar))
    # the same, written out: 0.5 (log 2 pi + log sigma^2 + (x - mean)^2 / sigma^2), summed per window
    per_sample = 0.5 * (math.log(2 * math.pi) + output_logvar + (x - mean) ** 2 / output_logvar.exp())
    torch.testing.assert_close(parts["recon"], per_sample.sum(dim=(1, 2)).mean())
    torch.testing.assert_close(parts["kl"], kl_divergence(mu, logvar))
    torch.testing.assert_close(parts["mse"], ((mean - x) ** 2).mean())
    torch.testing.assert_close(parts["sigma"], torch.exp(output_logvar / 2).mean())
    assert not parts["sigma"].requires_grad


def test_the_loss_samples_a_new_z_each_call():
    model = _model("linear")
    x = _windows(200)
    torch.manual_seed(0)
    first = waveform_vae_loss(model, {"audio": x})["recon"]
    second = waveform_vae_loss(model, {"audio": x})["recon"]
    assert not torch.allclose(first, second)


@pytest.mark.parametrize("variance", VARIANCES)
@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_the_encoder_and_the_learned_variance(kind, variance):
    model = _model(kind, variance)
    waveform_vae_loss(model, {"audio": _windows(SMALL[kind]["n_samples"])})["loss"].backward()
    first = next(m for m in model.encoder if isinstance(m, nn.Linear | nn.Conv1d))
    assert first.weight.grad.abs().sum() > 0
    assert model.to_mu.weight.grad.abs().sum() > 0
    assert model.to_logvar.weight.grad.abs().sum() > 0
    if variance == "fixed":
        assert model.output_log_variance().grad is None
    else:
        assert model.output_log_variance().grad.abs().sum() > 0


def _train(model: WaveformVAE, x: torch.Tensor, steps: int = 200) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    sigmas = []
    for _ in range(steps):
        parts = waveform_vae_loss(model, {"audio": x})
        optimizer.zero_grad()
        parts["loss"].backward()
        optimizer.step()
        sigmas.append(parts["sigma"].item())
    return sigmas


def test_training_lowers_a_learned_sigma_towards_the_scale_of_the_data():
    x = _windows(200, batch=8, amp=0.05)
    data_rms = x.pow(2).mean().sqrt().item()  # 0.035
    torch.manual_seed(0)
    sigmas = _train(_model("linear", "isotropic"), x)
    assert sigmas[0] == pytest.approx(1.0)
    assert all(b <= a + 1e-6 for a, b in zip(sigmas, sigmas[1:], strict=False))  # falls at every step
    # Adam moves log sigma^2 by about lr per step: 200 steps reach about exp(-1) = 0.37, still above the data
    assert data_rms < sigmas[-1] < 0.45, sigmas[::20]


def test_training_leaves_a_fixed_sigma_where_it_is():
    x = _windows(200, batch=8, amp=0.05)
    torch.manual_seed(0)
    model = _model("linear", "fixed", output_sigma=0.5)
    sigmas = _train(model, x, steps=20)
    assert sigmas == [pytest.approx(0.5)] * 20
    torch.testing.assert_close(model.output_log_variance(), torch.tensor(2 * math.log(0.5)))


# ----------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("kind", KINDS)
def test_sample_decodes_latents_from_the_prior_reproducibly(kind):
    model = _model(kind)
    n = SMALL[kind]["n_samples"]
    waves = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert waves.shape == (5, 1, n)
    assert not waves.requires_grad
    assert waves.std() > 0
    torch.testing.assert_close(model.sample(5, generator=torch.Generator().manual_seed(3)), waves)
    assert not torch.allclose(model.sample(5, generator=torch.Generator().manual_seed(4)), waves)
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(waves, model.decode(z).detach())


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((2, 250), r"x has shape \[2, 250\]; expected \[batch, 1, 250\] \(mono windows of n_samples=250\)"),
        ((2, 1, 200), r"x has shape \[2, 1, 200\]; expected \[batch, 1, 250\]"),
        ((2, 2, 250), r"x has shape \[2, 2, 250\]; expected \[batch, 1, 250\]"),
        ((1, 2, 1, 250), r"x has shape \[1, 2, 1, 250\]; expected .*RandomWindows, or x\.view\(batch, 1, -1\)"),
    ],
)
def test_wrong_window_shapes_are_rejected_with_the_fix(shape, message):
    model = _model("conv")
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))
    with pytest.raises(ValueError, match=message):
        waveform_vae_loss(model, {"audio": torch.zeros(shape)})


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_windows_are_rejected(bad):
    x = _windows(200, batch=2)
    x[1, 0, 17] = bad
    with pytest.raises(ValueError, match=r"x holds NaN or inf samples: check the audio you load"):
        _model("linear").encode(x)


def test_a_list_is_not_a_window():
    with pytest.raises(ValueError, match=r"x has shape list; expected \[batch, 1, 200\]"):
        _model("linear").encode([[0.0] * 200])


@pytest.mark.parametrize("shape", [(2, 3), (2, 4, 1), (4,)])
def test_decode_rejects_a_wrong_latent_shape(shape):
    expected = r"z has shape \[" + r", ".join(map(str, shape)) + r"\]; expected \[batch, 4\]\."
    with pytest.raises(ValueError, match=expected):
        _model("conv").decode(torch.zeros(shape))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "transformer"}, r"kind='transformer': use one of \['linear', 'conv'\]\."),
        ({"variance": "learned"}, r"variance='learned': use one of \['fixed', 'isotropic', 'diagonal'\]\."),
        ({"output_sigma": 0.0}, r"output_sigma=0\.0 must be a positive number, e\.g\. 1\.0 or 0\.1\."),
        ({"output_sigma": -1}, r"output_sigma=-1 must be a positive number"),
        ({"output_sigma": "1.0"}, r"output_sigma='1\.0' must be a positive number"),
        ({"latent_dim": 0}, r"latent_dim=0 must be a whole number >= 1\."),
        ({"stride": 2.0}, r"stride=2\.0 must be a whole number >= 1\."),
        ({"channels": ()}, r"channels=\(\): give positive channel counts, e\.g\. \(16, 32, 64\)\."),
        ({"channels": (16, 0)}, r"channels=\(16, 0\): give positive channel counts"),
        (
            {"n_samples": 3001},
            r"n_samples=3001 is not divisible by stride \*\* len\(channels\) = 125: "
            r"pick a window length that is, e\.g\. 3000\.",
        ),
        ({"n_samples": 100}, r"n_samples=100 is not divisible by .* = 125: pick a window length that is, e\.g\. 125\."),
        (
            {"n_samples": 100, "stride": 1, "kernel_size": 4},
            r"kernel_size=4 with stride=1: an even kernel cannot keep the length, use an odd kernel_size, e\.g\. 5\.",
        ),
    ],
)
def test_bad_configs_are_rejected_with_the_fix(fields, message):
    with pytest.raises(ValueError, match=message):
        WaveformVAEConfig(**fields)


def test_linear_windows_need_not_divide_by_the_stride():
    model = WaveformVAE(WaveformVAEConfig(kind="linear", n_samples=3001, hidden=8))
    assert model(torch.zeros(2, 1, 3001))[0].shape == (2, 1, 3001)


# ----------------------------------------------------------------------------- attention memory
def test_attention_memory_known_values():
    assert attention_memory_bytes(3000) == 36_000_000  # one second at 3 kHz: 9 million float32 weights
    assert attention_memory_bytes(3000, heads=1, batch=1, bytes_per_value=4) == 36_000_000
    assert attention_memory_bytes(10, heads=2, batch=3, bytes_per_value=2) == 3 * 2 * 100 * 2
    assert attention_memory_bytes(48_000, heads=8, batch=16) == 16 * 8 * 48_000**2 * 4
    assert attention_memory_bytes(1) == 4


def test_attention_memory_grows_with_the_square_of_the_length_and_linearly_in_heads_and_batch():
    base = attention_memory_bytes(1000, heads=2, batch=3)
    assert attention_memory_bytes(2000, heads=2, batch=3) == 4 * base
    assert attention_memory_bytes(10_000, heads=2, batch=3) == 100 * base
    assert attention_memory_bytes(1000, heads=4, batch=3) == 2 * base
    assert attention_memory_bytes(1000, heads=2, batch=6) == 2 * base
    assert attention_memory_bytes(1000, heads=2, batch=3, bytes_per_value=2) == base // 2


@pytest.mark.parametrize(("length", "batch", "dtype"), [(50, 3, torch.float32), (17, 1, torch.float64)])
def test_attention_memory_matches_the_weights_torch_returns(length, batch, dtype):
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(embed_dim=8, num_heads=2, batch_first=True).to(dtype)
    x = torch.randn(batch, length, 8, dtype=dtype)
    _, weights = attention(x, x, x, need_weights=True, average_attn_weights=False)
    assert weights.shape == (batch, 2, length, length)
    torch.testing.assert_close(weights.sum(-1), torch.ones(batch, 2, length, dtype=dtype))  # really the weights
    expected = attention_memory_bytes(length, heads=2, batch=batch, bytes_per_value=weights.element_size())
    assert weights.numel() * weights.element_size() == expected


def test_config_round_trips_through_a_checkpoint_dict_and_builds_the_same_model():
    from coursekit.models.waveform import build_waveform_vae

    config = WaveformVAEConfig(kind="conv", variance="diagonal")
    stored = config.to_dict()
    assert WaveformVAEConfig.from_dict(stored) == config
    torch.manual_seed(0)
    first = build_waveform_vae(stored)
    torch.manual_seed(0)
    second = build_waveform_vae(config)
    assert first.config == config
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True))
    with pytest.raises(ValueError, match=r"WaveformVAEConfig has no field\(s\) \['kernel'\]"):
        build_waveform_vae(stored | {"kernel": 3})
