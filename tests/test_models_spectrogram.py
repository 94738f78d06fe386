"""coursekit.models.spectrogram: features, the two-stage spectrogram VAE, its datasets, shipped checkpoints."""

from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn
from torch.utils.data import DataLoader

from coursekit import audio, checkpoints, config, synth
from coursekit.data import notes as notes_module
from coursekit.data.notes import NoteTensors, notes_features, nsynth_features, pre_encode
from coursekit.data.nsynth import NSynth
from coursekit.features import SpectrogramFeatures
from coursekit.losses import gaussian_nll, kl_divergence
from coursekit.metrics import active_units
from coursekit.models import parameter_count
from coursekit.models.code_vae import CodeVAE, CodeVAEConfig, build_code_vae, code_vae_loss
from coursekit.models.spectrogram import (
    SpectrogramAE,
    SpectrogramAEConfig,
    SpectrogramVAE,
    ae_loss,
    build_spectrogram_ae,
)
from coursekit.recipes import registry
from coursekit.recipes import spectrogram_vae as spec_recipes
from coursekit.recipes.spectrogram_vae import load_spectrogram_vae

SR = 16000
FEATURES = SpectrogramFeatures()
# Small settings for model tests: 0.25 s, 32 bins x 128 frames.
SMALL = SpectrogramFeatures(duration=0.25, n_fft=64, hop_length=32, n_freq=32, n_frames=128)
SMALL_AE = {"channels": (4, 8), "code_dim": 8, "n_freq": 32, "n_frames": 128, "features": SMALL}


def _tone(f0: float, duration: float = 2.0, decay: float = 1.5) -> torch.Tensor:
    """A decaying harmonic tone ``[samples]`` at 16 kHz (10 harmonics, amplitudes 1/k)."""
    x = synth.harmonic_tone(f0, duration, SR, n_harmonics=10)
    return x * torch.exp(-decay * torch.arange(len(x)) / SR)


def _ae(seed: int = 0, **fields) -> SpectrogramAE:
    torch.manual_seed(seed)
    return build_spectrogram_ae({**SMALL_AE, **fields})


def _vae(seed: int = 0, **fields) -> CodeVAE:
    torch.manual_seed(seed)
    return build_code_vae({"code_dim": 8, "hidden": 16, "latent_dim": 3, **fields})


def _small_batch(n: int = 4) -> torch.Tensor:
    """Features [n, 1, 32, 128] of n different tones under the SMALL settings."""
    return SMALL.encode(torch.stack([_tone(200 + 150 * i, 0.25).unsqueeze(0) for i in range(n)]))


# ----------------------------------------------------------------------------- features: known values
def test_a_full_scale_sine_reads_minus_6_db_then_mu_law_and_padding_frames_are_silent():
    features = FEATURES.encode(synth.sine(1000.0, 2.0, SR, amp=1.0))  # 1000 Hz = bin 32 of 31.25 Hz
    assert features.shape == (1, 256, 128) and features.dtype == torch.float32
    expected = math.log1p(8 * 0.5) / math.log1p(8)  # a sine reaches half the reference n_fft / 2
    assert features[0, 32, 2:124] == pytest.approx(torch.full((122,), expected), abs=2e-4)
    assert float(features[0, 32, 2:124].mean()) == pytest.approx(0.7325, abs=1e-3)
    assert features[0, 40:, 2:124].max() < 0.01  # nothing far from 1000 Hz
    assert torch.all(features[..., FEATURES.n_stft_frames :] == 0)  # frames 126 and 127 are padding
    assert 0 <= features.min() and features.max() <= 1


def test_the_floor_removes_a_minus_80_db_partial_and_keeps_a_minus_40_db_one():
    t_main, t_quiet, t_gone = (synth.sine(f, 2.0, SR, amp=a) for f, a in ((1000, 1.0), (3000, 1e-2), (5000, 1e-4)))
    x = t_main + t_quiet + t_gone
    features = FEATURES.encode(x)
    middle = slice(4, 120)
    expected_quiet = audio.mu_law_compress(torch.tensor(0.5 * 1e-2 / float(x.abs().max())))  # -46 dB: kept, lifted
    assert features[0, 96, middle] == pytest.approx(expected_quiet.expand(116), rel=2e-3)
    assert float(expected_quiet) > 0.017  # mu-law lifts 0.005 to 0.018
    assert torch.all(features[0, 150:170, middle] == 0)  # -86 dB below the reference: under the floor
    without_floor = dataclass_replace(FEATURES, floor_db=-100.0).encode(x)
    assert torch.all(without_floor[0, 160, middle] > 0)  # the partial is there; the floor removed it


def dataclass_replace(features: SpectrogramFeatures, **changes) -> SpectrogramFeatures:
    return SpectrogramFeatures(**{**features.to_dict(), **changes})


def test_encode_peak_normalises_trims_and_pads():
    tone = _tone(220.0, duration=3.0)
    features = FEATURES.encode(tone)
    torch.testing.assert_close(FEATURES.encode(0.1 * tone), features, atol=1e-5, rtol=0)  # level does not matter
    torch.testing.assert_close(FEATURES.encode(tone[:32000]), features)  # only the first 2 s count
    short = FEATURES.encode(tone[:16000])
    assert torch.all(short[..., 64:] == 0) and short[..., :60].max() > 0.5  # padded with silence after 1 s
    assert torch.all(FEATURES.encode(torch.zeros(32000)) == 0)  # silence stays silent


def test_encode_takes_one_note_or_a_batch_and_notes_stay_independent():
    a, b = _tone(220.0), _tone(330.0)
    one = FEATURES.encode(a)
    assert FEATURES.encode(a.unsqueeze(0)).shape == (1, 256, 128)
    batch = FEATURES.encode(torch.stack([a, b]).unsqueeze(1))
    assert batch.shape == (2, 1, 256, 128)
    torch.testing.assert_close(batch[0], one)
    torch.testing.assert_close(batch[1], FEATURES.encode(b))


def test_to_magnitude_inverts_the_scaling_exactly_above_the_floor():
    x = audio.peak_normalize(_tone(220.0).unsqueeze(0))
    true = audio.stft(x, 512, 256).abs()
    restored = FEATURES.to_magnitude(FEATURES.encode(x))
    assert restored.shape == true.shape == (1, 257, 126)
    kept = true[:, :256] >= FEATURES.floor * FEATURES.reference
    assert 0.1 < kept.float().mean() < 0.9  # both cases occur
    torch.testing.assert_close(restored[:, :256][kept], true[:, :256][kept], rtol=1e-4, atol=1e-4)
    assert torch.all(restored[:, :256][~kept] == 0)
    assert torch.all(restored[:, 256] == 0)  # the Nyquist bin comes back as zeros


def test_round_trip_features_to_audio_to_features_is_close():
    a, b = FEATURES.encode(_tone(220.0)), FEATURES.encode(_tone(330.0))
    back = FEATURES.encode(FEATURES.decode(a, n_iter=32))
    error, other = (back - a).abs().mean(), (b - a).abs().mean()
    assert error < 0.002  # measured 0.0009
    assert error < other / 5  # a different note differs by 0.010
    random_phase = FEATURES.encode(FEATURES.decode(a, n_iter=0))
    assert error < (random_phase - a).abs().mean() / 2  # Griffin-Lim's iterations make the phase consistent


def test_round_trip_audio_to_features_to_audio_is_close_to_the_original():
    a, b = _tone(220.0), _tone(330.0)
    decoded = FEATURES.decode(FEATURES.encode(a))
    assert decoded.shape == (1, 32000)
    reference = audio.peak_normalize(a).unsqueeze(0)
    same = audio.spectral_distance(reference, decoded)
    other = audio.spectral_distance(reference, audio.peak_normalize(b).unsqueeze(0))
    assert same < 0.6 and same < other / 2  # measured 0.41 vs 1.04
    assert audio.rms_db(decoded) == pytest.approx(float(audio.rms_db(reference)), abs=1.0)  # the input's level


def test_decode_is_repeatable_and_batched():
    features = FEATURES.encode(torch.stack([_tone(220.0), _tone(500.0)]).unsqueeze(1))
    first = FEATURES.decode(features)
    assert first.shape == (2, 1, 32000)
    torch.testing.assert_close(FEATURES.decode(features), first)
    assert not torch.allclose(FEATURES.decode(features, seed=1), first)


def test_settings_are_validated_and_round_trip_through_a_dict():
    assert SpectrogramFeatures.from_dict(json.loads(json.dumps(FEATURES.to_dict()))) == FEATURES
    assert (FEATURES.n_samples, FEATURES.n_stft_frames, FEATURES.reference) == (32000, 126, 256.0)
    with pytest.raises(ValueError, match=r"n_frames=100 is fewer than the 126 STFT frames"):
        SpectrogramFeatures(n_frames=100)
    with pytest.raises(ValueError, match=r"n_freq=257 must be n_fft // 2 = 256"):
        SpectrogramFeatures(n_freq=257)
    with pytest.raises(ValueError, match=r"no field\(s\) \['hop'\]"):
        SpectrogramFeatures.from_dict({"hop": 128})


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(2, 32000), r"2 channels; the features are mono: .*to_mono"),
        (torch.zeros(1, 1, 1, 32000), r"rank 4"),
        (torch.tensor([0.0, float("nan")] * 1000), r"NaN or inf"),
        (torch.zeros(32000, dtype=torch.int16), r"float tensor"),
    ],
)
def test_encode_refuses_bad_audio_with_a_clear_message(x, message):
    with pytest.raises((ValueError, TypeError), match=message):
        FEATURES.encode(x)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (torch.zeros(256, 128), r"shape \[256, 128\]; expected \[1, 256, 128\]"),
        (torch.zeros(2, 1, 257, 128), r"expected \[1, 256, 128\] or \[batch, 1, 256, 128\]"),
        (torch.full((1, 256, 128), float("nan")), r"NaN or inf"),
        (torch.full((1, 256, 128), 1.5), r"values in \[1.5, 1.5\]; features lie in \[0, 1\]: use .clamp"),
    ],
)
def test_decode_refuses_bad_features_with_a_clear_message(features, message):
    with pytest.raises(ValueError, match=message):
        FEATURES.decode(features)


# ----------------------------------------------------------------------------- stage 1: the autoencoder
def test_default_autoencoder_has_the_planned_shapes_and_size():
    ae = build_spectrogram_ae()
    assert ae.config.bottleneck == (64, 16, 8)
    assert parameter_count(ae) < 1_500_000
    buffer = io.BytesIO()
    torch.save(ae.state_dict(), buffer)
    assert buffer.tell() < 10 * 2**20  # a checkpoint stays under 10 MB
    x = FEATURES.encode(torch.stack([_tone(f0) for f0 in (220.0, 330.0, 440.0, 550.0)]).unsqueeze(1))
    code = ae.train().encode(x)  # in training mode the code is normalised over the batch
    assert code.shape == (4, 64)
    torch.testing.assert_close(code.mean(dim=0), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(code.var(dim=0, correction=0), torch.ones(64), atol=2e-2, rtol=0)  # BN eps
    out = ae.eval().decode(code)
    assert out.shape == (4, 1, 256, 128) and 0 < out.min() and out.max() < 1  # sigmoid
    assert 0.003 < out.mean() < 0.05  # starts near a typical feature value (OUTPUT_BIAS), not 0.5
    downs = [m for m in ae.encoder if isinstance(m, nn.Conv2d)]
    assert [m.stride for m in downs] == [(2, 2)] * 4


def test_autoencoder_gradients_reach_every_parameter_and_the_loss_is_the_mse():
    ae, x = _ae(), _small_batch()
    parts = ae_loss(ae, {"features": x, "pitch": torch.zeros(4)})
    assert set(parts) == {"loss"}
    torch.testing.assert_close(parts["loss"], ((ae(x) - x) ** 2).mean())
    parts["loss"].backward()
    for name, p in ae.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_autoencoder_is_deterministic_under_a_seed_and_config_round_trips():
    x = _small_batch()
    a, b, c = _ae(seed=3).eval(), _ae(seed=3).eval(), _ae(seed=4).eval()
    torch.testing.assert_close(a(x), b(x))
    assert not torch.allclose(a(x), c(x))
    stored = json.loads(json.dumps(a.config.to_dict()))
    assert SpectrogramAEConfig.from_dict(stored) == a.config
    rebuilt = build_spectrogram_ae(stored)
    rebuilt.load_state_dict(a.state_dict())
    torch.testing.assert_close(rebuilt.eval()(x), a(x))


def test_batch_norm_is_optional():
    assert any(isinstance(m, nn.BatchNorm2d) for m in _ae().modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in _ae(batch_norm=False).modules())


def test_a_few_steps_fit_one_batch():
    ae, x = _ae(), _small_batch()
    optimizer = torch.optim.Adam(ae.parameters(), lr=3e-3)
    first = float(ae_loss(ae, {"features": x})["loss"].detach())
    for _ in range(60):
        loss = ae_loss(ae, {"features": x})["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < first / 4


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"channels": ()}, r"channels=\(\): give one positive channel count per block"),
        ({"channels": (4, 0)}, r"channels\[1\]=0 must be a whole number >= 1"),
        ({"code_dim": 0}, r"code_dim=0 must be a whole number >= 1"),
        ({"n_freq": 30}, r"n_freq=30 and n_frames=128 must be divisible by 2 \*\* len\(channels\) = 4"),
        ({"width": 3}, r"no field\(s\) \['width'\]"),
        ({"n_freq": 64}, r"n_freq=64 and n_frames=128 differ from the features' 32 x 128: build the autoencoder"),
        ({"features": FEATURES}, r"n_freq=32 and n_frames=128 differ from the features' 256 x 128"),
    ],
)
def test_bad_autoencoder_configs_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        build_spectrogram_ae({**SMALL_AE, **fields})


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(1, 32, 128), r"shape \[1, 32, 128\]; expected \[batch, 1, 32, 128\]: add the batch dimension"),
        (torch.zeros(2, 1, 64, 128), r"expected \[batch, 1, 32, 128\]"),
        (torch.full((2, 1, 32, 128), float("nan")), r"NaN or inf"),
        (torch.zeros(2, 1, 32, 128, dtype=torch.long), r"float torch.Tensor"),
    ],
)
def test_autoencoder_refuses_bad_inputs_with_a_clear_message(x, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _ae().encode(x)


def test_autoencoder_decode_refuses_a_code_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"code has shape \[2, 5\]; expected \[batch, 8\]"):
        _ae().decode(torch.zeros(2, 5))


# ----------------------------------------------------------------------------- stage 2: the VAE core
def test_latent_vae_shapes_and_sampling():
    vae, code = _vae(), torch.rand(5, 8) * 2 - 1
    mu, logvar = vae.encode(code)
    assert mu.shape == logvar.shape == (5, 3)
    mean, mu2, logvar2 = vae(code)
    assert mean.shape == (5, 8)
    torch.testing.assert_close((mu2, logvar2), (mu, logvar))
    assert vae.decode(mu).shape == (5, 8)
    samples = vae.sample(7, torch.Generator().manual_seed(0))
    assert samples.shape == (7, 8) and not samples.requires_grad
    torch.testing.assert_close(vae.sample(7, torch.Generator().manual_seed(0)), samples)


def test_code_vae_loss_is_the_gaussian_nll_plus_beta_times_the_kl():
    vae, code = _vae(), torch.rand(6, 8) * 2 - 1
    parts = code_vae_loss(vae, {"code": code}, beta=0.5, generator=torch.Generator().manual_seed(1))
    mu, logvar = vae.encode(code)
    z = vae.reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    mean = vae.decode(z)
    recon = gaussian_nll(code, mean, vae.output_logvar)
    manual = 0.5 * (math.log(2 * math.pi) + vae.output_logvar + (code - mean) ** 2 / vae.output_logvar.exp())
    torch.testing.assert_close(recon, manual.sum(dim=1).mean())
    torch.testing.assert_close(parts["recon"], recon)
    torch.testing.assert_close(parts["kl"], kl_divergence(mu, logvar))
    torch.testing.assert_close(parts["loss"], parts["recon"] + 0.5 * parts["kl"])
    torch.testing.assert_close(parts["mse"], ((mean - code) ** 2).mean())
    assert float(parts["sigma"]) == pytest.approx(1.0)  # where the learned sigma starts


def test_isotropic_variance_is_learned_and_fixed_is_not():
    learned, fixed = _vae(), _vae(variance="fixed", output_sigma=1.0)
    assert isinstance(learned.output_logvar, nn.Parameter)
    assert "output_logvar" not in dict(fixed.named_parameters()) and float(fixed.output_logvar) == 0.0
    code = torch.rand(4, 8)
    for model in (learned, fixed):
        code_vae_loss(model, {"code": code})["loss"].backward()
    assert learned.output_logvar.grad is not None and learned.output_logvar.grad != 0
    for name, p in learned.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_reparameterize_is_mu_plus_sigma_times_the_generators_noise():
    vae = _vae()
    mu, logvar = torch.tensor([[1.0, -2.0, 0.0]]), torch.tensor([[0.0, math.log(4.0), -100.0]])
    eps = torch.randn(1, 3, generator=torch.Generator().manual_seed(5))
    z = vae.reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    torch.testing.assert_close(z, mu + torch.tensor([[1.0, 2.0, 0.0]]) * eps)
    with pytest.raises(ValueError, match=r"mu has shape \[1, 3\] but logvar has \[1, 2\]"):
        vae.reparameterize(mu, logvar[:, :2])


def test_latent_vae_learns_codes_that_lie_on_a_two_dimensional_surface():
    torch.manual_seed(0)
    factors = torch.rand(256, 2) * 2 - 1
    codes = torch.tanh(factors @ torch.randn(2, 8) + 0.1 * torch.sin(3 * factors) @ torch.randn(2, 8))
    vae = _vae(latent_dim=4, hidden=32, output_sigma=0.1)  # the codes' scale: standard deviation about 0.5
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    first = float(code_vae_loss(vae, {"code": codes})["loss"].detach())
    for _ in range(300):
        parts = code_vae_loss(vae, {"code": codes})
        optimizer.zero_grad()
        parts["loss"].backward()
        optimizer.step()
    assert float(parts["loss"].detach()) < first - 50  # nats per code: from +102 to about -5
    assert float(parts["mse"].detach()) < codes.var(dim=0).mean() / 50
    mu, _ = vae.encode(codes)
    assert active_units(mu.detach())[0] == 2  # two factors made the codes; the other two latents stay unused


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"latent_dim": 0}, r"latent_dim=0 must be a whole number >= 1"),
        ({"variance": "diagonal"}, r"variance='diagonal': use one of \['fixed', 'isotropic'\]"),
        ({"output_sigma": 0}, r"output_sigma=0 must be a positive number"),
        ({"latent": 6}, r"no field\(s\) \['latent'\]"),
    ],
)
def test_bad_latent_vae_configs_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        build_code_vae({"code_dim": 8, **fields})


def test_latent_vae_refuses_codes_and_latents_of_the_wrong_size():
    vae = _vae()
    with pytest.raises(ValueError, match=r"code has shape \[8\]; expected \[batch, 8\]: add the batch dimension"):
        vae.encode(torch.zeros(8))
    with pytest.raises(ValueError, match=r"z has shape \[2, 6\]; expected \[batch, 3\]"):
        vae.decode(torch.zeros(2, 6))
    with pytest.raises(ValueError, match=r"n=0 must be a whole number >= 1"):
        vae.sample(0)


# ----------------------------------------------------------------------------- the two stages together
def _wrapper(seed: int = 0) -> SpectrogramVAE:
    return SpectrogramVAE(_ae(seed), _vae(seed), SMALL).eval()


def test_wrapper_goes_from_audio_to_latent_and_back():
    model = _wrapper()
    notes = torch.stack([_tone(300.0, 0.25), _tone(450.0, 0.25)]).unsqueeze(1)
    mu, logvar = model.encode_audio(notes)
    assert mu.shape == logvar.shape == (2, 3) and model.latent_dim == 3
    expected, _ = model.vae.encode(model.ae.encode(SMALL.encode(notes)))
    torch.testing.assert_close(mu, expected)
    assert model.encode_audio(notes[0, 0])[0].shape == (1, 3)  # one note [samples] is a batch of one
    features = model.decode_latent(mu)
    assert features.shape == (2, 1, 32, 128) and not features.requires_grad
    torch.testing.assert_close(features, model.ae.decode(model.vae.decode(mu)))
    sound = model.latent_to_audio(mu, n_iter=4)
    assert sound.shape == (2, 1, 4000) and torch.isfinite(sound).all()
    torch.testing.assert_close(sound, SMALL.decode(features, n_iter=4))
    assert model.sample(3, torch.Generator().manual_seed(0)).shape == (3, 1, 32, 128)


def test_wrapper_refuses_parts_that_do_not_fit():
    with pytest.raises(ValueError, match=r"codes of 8 but the VAE core takes 64"):
        SpectrogramVAE(_ae(), build_code_vae(), SMALL)
    with pytest.raises(ValueError, match=r"takes \[1, 32, 128\] but the features are \[1, 256, 128\]"):
        SpectrogramVAE(_ae(), _vae(), FEATURES)  # other features than the autoencoder's config names


# ----------------------------------------------------------------------------- datasets
def test_note_tensors_items_batches_and_selection():
    data = NoteTensors({"code": torch.arange(10.0).reshape(5, 2), "pitch": torch.arange(5)}, list("abcde"))
    item = data[1]
    assert len(data) == 5 and set(item) == {"code", "pitch", "note_str"}
    assert item["code"].tolist() == [2.0, 3.0] and int(item["pitch"]) == 1 and item["note_str"] == "b"
    batch = next(iter(DataLoader(data, batch_size=3)))
    assert batch["code"].shape == (3, 2) and batch["note_str"] == ["a", "b", "c"]
    picked = data.select([4, 0])
    assert picked.note_str == ["e", "a"] and picked.tensors["pitch"].tolist() == [4, 0]
    assert data.select(slice(2)).note_str == ["a", "b"]
    with pytest.raises(ValueError, match=r"one row per note \(4 notes\)"):
        NoteTensors({"code": torch.zeros(5, 2)}, list("abcd"))


def _write_nsynth(root, pitches=(57, 64, 69)) -> None:
    """Three decaying tones in NSynth's layout, as family 3 (guitar)."""
    audio_dir = root / "nsynth-valid" / "audio"
    audio_dir.mkdir(parents=True)
    examples = {}
    for pitch in pitches:
        name = f"guitar_acoustic_001-{pitch:03d}-100"
        examples[name] = {
            "note_str": name, "pitch": pitch, "velocity": 100, "instrument": 1, "instrument_str": "guitar_acoustic_001",
            "instrument_family": 3, "instrument_family_str": "guitar", "instrument_source": 0,
            "instrument_source_str": "acoustic",
        }  # fmt: skip
        x = 0.8 * _tone(440.0 * 2 ** ((pitch - 69) / 12), duration=4.0)
        sf.write(audio_dir / f"{name}.wav", x.numpy().astype(np.float32), SR, subtype="PCM_16")
    (root / "nsynth-valid" / "examples.json").write_text(json.dumps(examples))


def test_notes_features_computes_each_note_once_and_caches_in_memory_and_on_disk(tmp_path, monkeypatch):
    _write_nsynth(tmp_path / "ns")
    notes = NSynth(tmp_path / "ns", "valid")
    cache = tmp_path / "features.pt"
    data = notes_features(notes, cache_file=cache)
    assert len(data) == 3 and data.tensors["features"].shape == (3, 1, 256, 128)
    assert data.tensors["pitch"].tolist() == [57, 64, 69] and data.tensors["family"].tolist() == [3, 3, 3]
    item = data[1]
    assert item["note_str"] == "guitar_acoustic_001-064-100"
    torch.testing.assert_close(item["features"], FEATURES.encode(notes[1]["audio"]))
    assert notes_features(notes, cache_file=cache) is data  # memory
    assert cache.is_file()
    monkeypatch.setattr(notes_module, "_FEATURE_CACHE", {})
    recompute = lambda *args: pytest.fail("recomputed despite the disk cache")  # noqa: E731
    monkeypatch.setattr(notes_module, "_compute_features", recompute)
    from_disk = notes_features(notes, cache_file=cache)
    torch.testing.assert_close(from_disk.tensors, data.tensors)
    assert from_disk.note_str == data.note_str


def test_notes_features_recomputes_when_settings_or_files_change(tmp_path):
    _write_nsynth(tmp_path / "ns")
    notes = NSynth(tmp_path / "ns", "valid")
    first = notes_features(notes)
    other = notes_features(notes, dataclass_replace(FEATURES, floor_db=-50.0))
    assert other is not first and torch.all(other.tensors["features"] <= first.tensors["features"] + 1e-6)
    wav = tmp_path / "ns" / "nsynth-valid" / "audio" / "guitar_acoustic_001-057-100.wav"
    sf.write(wav, np.zeros(64000, dtype=np.float32), SR, subtype="PCM_16")
    rewritten = notes_features(NSynth(tmp_path / "ns", "valid"))
    assert torch.all(rewritten.tensors["features"][0] == 0)  # the silent new file, not the cached tone


def test_nsynth_features_reads_nsynth_mini_and_caches_under_the_data_folder(tmp_path, monkeypatch):
    _write_nsynth(tmp_path / "ns")
    opened = []

    def fake_mini(split, size, seed, root):  # NSynthMini would render the real set; read the fake one
        opened.append((split, size, seed, root))
        return NSynth(tmp_path / "ns", split)

    monkeypatch.setattr(notes_module, "NSynthMini", fake_mini)
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "data"))
    data = nsynth_features("valid", size="tiny", disk_cache=True)
    assert opened == [("valid", "tiny", 0, None)] and len(data) == 3
    assert (tmp_path / "data" / "spectrogram_features-tiny-seed0-valid.pt").is_file()
    assert nsynth_features("valid", size="tiny") is data  # the same notes: from memory


def test_notes_features_refuses_notes_at_another_rate(tmp_path):
    _write_nsynth(tmp_path / "ns")
    with pytest.raises(ValueError, match=r"notes are at 8000 Hz but the features expect 16000 Hz"):
        notes_features(NSynth(tmp_path / "ns", "valid", sr=8000))


def test_pre_encode_stores_the_codes_of_the_encoder_function_and_keeps_the_labels():
    ae = _ae().eval()  # batch norm must use its running statistics: the caller says so
    data = NoteTensors({"features": _small_batch(5), "pitch": torch.arange(5)}, list("abcde"))
    codes = pre_encode(ae.encode, data, batch_size=2)
    assert set(codes.tensors) == {"code", "pitch"} and codes.note_str == list("abcde")
    torch.testing.assert_close(codes.tensors["code"], ae.encode(data.tensors["features"]), rtol=1e-5, atol=1e-6)
    halves = pre_encode(lambda f: f.flatten(1)[:, :3] / 2, data)  # any function of features [b, 1, f, t] -> [b, d]
    torch.testing.assert_close(halves.tensors["code"], data.tensors["features"].flatten(1)[:, :3] / 2)
    with pytest.raises(ValueError, match=r"pre_encode needs 'features'"):
        pre_encode(ae.encode, codes)
    with pytest.raises(ValueError, match=r"encode returned \[2\] for 2 notes; it must return \[notes, code_dim\]"):
        pre_encode(lambda f: f.sum(dim=(1, 2, 3)), data, batch_size=2)


# ----------------------------------------------------------------------------- shipped checkpoints
SHIPPED = checkpoints.list_pretrained()


@pytest.fixture
def _shipped_spectrogram_checkpoints():
    """Fail (never skip) the tests of the shipped checkpoints when one is not registered."""
    missing = sorted({spec_recipes.AE_CHECKPOINT, spec_recipes.VAE_CHECKPOINT} - set(SHIPPED))
    if missing:
        pytest.fail(f"{', '.join(missing)} not registered: run `python -m coursekit train spec_ae_nsynth --ship` "
                    "and `spec_vae_nsynth --ship` first")


NEEDS_CHECKPOINTS = pytest.mark.usefixtures("_shipped_spectrogram_checkpoints")
MINI_TEST = config.data_dir() / "nsynth_mini-mini-seed0" / "nsynth-test"


def _first_test_notes(n: int) -> NoteTensors:
    from coursekit.data.nsynth import render_nsynth_mini

    root = render_nsynth_mini()  # the checkpoints' own data; cached, about 2 s to render the first time
    assert root == MINI_TEST.parent
    notes = NSynth(root, "test")
    feats = FEATURES.encode(torch.stack([notes[i]["audio"] for i in range(n)]))
    return NoteTensors({"features": feats}, [notes.examples[i]["note_str"] for i in range(n)])


@NEEDS_CHECKPOINTS
@pytest.mark.parametrize("name", [spec_recipes.AE_CHECKPOINT, spec_recipes.VAE_CHECKPOINT])
def test_shipped_checkpoints_are_small_and_verified(name):
    entry = SHIPPED[name]
    assert (config.checkpoint_dir() / entry["file"]).stat().st_size == entry["size_bytes"] < 10 * 2**20
    build = build_spectrogram_ae if name == spec_recipes.AE_CHECKPOINT else build_code_vae
    model, ckpt = checkpoints.load_pretrained(name, build)
    assert not model.training
    assert ckpt["metrics"]["epochs_run"] >= 1


@NEEDS_CHECKPOINTS
def test_shipped_autoencoder_reproduces_its_recorded_error_on_the_first_test_notes():
    from coursekit.recipes.spectrogram_vae import describe_ae

    ae, ckpt = checkpoints.load_pretrained(spec_recipes.AE_CHECKPOINT, build_spectrogram_ae)
    metrics = ckpt["metrics"]
    first = _first_test_notes(8)
    assert describe_ae(ae, first)["mse"] == pytest.approx(metrics["test_mse_first_8"], rel=1e-4)
    # saved before the feature settings were part of the config: it gets the defaults, which its metrics
    # record as the settings it was trained on
    assert "features" not in ckpt["config"] and ae.config.features == FEATURES
    assert SpectrogramFeatures.from_dict(metrics["features"]) == FEATURES  # recorded before `scale`: the default
    assert metrics["test_mse"] < 0.0006  # trained: the average train spectrogram scores 0.0012, untrained 0.22
    assert metrics["spectral_distance_ae"] < metrics["spectral_distance_shuffled"]


@NEEDS_CHECKPOINTS
def test_shipped_vae_core_reproduces_its_recorded_elbo_and_decodes_audible_notes():
    from coursekit.recipes.spectrogram_vae import describe_code_vae

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the VAE core was trained on this very autoencoder file
        model = load_spectrogram_vae()
    metrics = checkpoints.load_pretrained(spec_recipes.VAE_CHECKPOINT)[1]["metrics"]
    assert metrics["ae_sha256"] == SHIPPED[spec_recipes.AE_CHECKPOINT]["sha256"]
    first = _first_test_notes(8)
    both = NoteTensors(first.tensors | {"code": model.ae.encode(first.tensors["features"])}, first.note_str)
    measured = describe_code_vae(model.vae, both, model.ae)
    assert measured["elbo_loss"] == pytest.approx(metrics["test_elbo_loss_first_8"], rel=1e-4, abs=1e-3)
    assert measured["feature_mse"] == pytest.approx(metrics["test_feature_mse_first_8"], rel=1e-4)
    assert metrics["valid_active_units"] >= 4
    sound = model.latent_to_audio(torch.zeros(1, model.latent_dim), n_iter=8)
    assert sound.shape == (1, 1, 32000) and float(audio.rms_db(sound)) > -40  # the prior's centre is not silent


def test_load_spectrogram_vae_warns_when_the_vae_core_was_trained_on_another_autoencoder(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))  # a student's runs of both stages, under tmp_path/runs
    torch.manual_seed(0)
    ae = build_spectrogram_ae(SpectrogramAEConfig(channels=(2,), code_dim=4))
    vae = build_code_vae(CodeVAEConfig(code_dim=4, hidden=8, latent_dim=2))
    ae_file = registry.run_path(spec_recipes.AE_CHECKPOINT)
    checkpoints.save_checkpoint(ae_file, ae, ae.config.to_dict(), {"features": FEATURES.to_dict()})
    for sha, should_warn in ((checkpoints.sha256_of(ae_file), False), ("0" * 64, True)):
        vae_file = registry.run_path(spec_recipes.VAE_CHECKPOINT)
        checkpoints.save_checkpoint(vae_file, vae, vae.config.to_dict(), {"ae_sha256": sha})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_spectrogram_vae(verbose=False)
        warned = [str(w.message) for w in caught if "trained on the codes of another" in str(w.message)]
        assert bool(warned) == should_warn
        assert isinstance(model, SpectrogramVAE) and model.latent_dim == 2 and not model.ae.training
    assert "python -m coursekit train spec_vae_nsynth" in warned[0]


def test_encode_is_differentiable_and_decode_detaches():
    x = _tone(220.0).requires_grad_(True)
    assert FEATURES.encode(x).requires_grad  # encode is differentiable (no parameters inside)
    assert not FEATURES.decode(FEATURES.encode(x)).requires_grad  # decode detaches: Griffin-Lim is not


def test_the_feature_settings_travel_in_the_autoencoder_config():
    ae = _ae()
    stored = json.loads(json.dumps(ae.config.to_dict()))  # what a checkpoint keeps
    assert stored["features"] == SMALL.to_dict()
    rebuilt = build_spectrogram_ae(stored)
    assert rebuilt.config == ae.config and rebuilt.config.features == SMALL
    vae = build_code_vae({"code_dim": 8, "hidden": 16, "latent_dim": 3})
    assert SpectrogramVAE(rebuilt, vae).features == SMALL  # the joined model reads them from the config
