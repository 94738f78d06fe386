"""coursekit.recipes.raw_audio and coursekit.models.frame_autoencoder: lesson 03's data split, loader,
measurements and source 003's frame autoencoder; and the linear waveform VAE's depth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coursekit import synth
from coursekit.models.frame_autoencoder import FrameAutoencoder, FrameAutoencoderConfig, build_frame_autoencoder
from coursekit.models.waveform import WaveformVAE, WaveformVAEConfig
from coursekit.recipes import RECIPES
from coursekit.recipes import raw_audio as R

SR = 3000


def _tones(*hz: float, seconds: float = 1.0, amp: float = 0.3) -> torch.Tensor:
    """Harmonic tones at 3 kHz, one per frequency: Tensor [n, 1, samples]."""
    return torch.stack([synth.harmonic_tone(f, seconds, SR, n_harmonics=3) * amp for f in hz]).view(len(hz), 1, -1)


# ----------------------------------------------------------------------------- the frame autoencoder
@pytest.mark.parametrize(("code_channels", "numbers", "compression"), [(2, 16, 187.5), (10, 80, 37.5)])
def test_frame_autoencoder_code_size_and_compression(code_channels, numbers, compression):
    config = FrameAutoencoderConfig(code_channels=code_channels)
    model = FrameAutoencoder(config)
    x = torch.randn(3, 1, 3000)
    code = model.encode(x)
    assert config.hop == 375 and config.n_frames == 8
    assert list(code.shape) == [3, code_channels, 8] and code[0].numel() == numbers
    assert config.compression == compression == 3000 / numbers
    assert model.decode(code).shape == x.shape == model(x).shape


def test_frame_autoencoder_frames_are_local():
    """A change in the last 375-sample hop leaves the code of the first frame untouched (no global layer)."""
    model = FrameAutoencoder(FrameAutoencoderConfig())
    x = torch.randn(1, 1, 3000)
    y = x.clone()
    y[..., -375:] += 1.0
    assert torch.equal(model.encode(x)[..., 0], model.encode(y)[..., 0])
    assert not torch.equal(model.encode(x)[..., -1], model.encode(y)[..., -1])


def test_frame_autoencoder_config_round_trip_and_errors():
    config = FrameAutoencoderConfig(strides=(4, 5), channels=8, code_channels=3, n_samples=400)
    assert FrameAutoencoderConfig.from_dict(config.to_dict()) == config
    assert build_frame_autoencoder(config.to_dict()).config == config
    with pytest.raises(ValueError, match="not divisible by the hop 375"):
        FrameAutoencoderConfig(n_samples=1000)
    with pytest.raises(ValueError, match="strides"):
        FrameAutoencoderConfig(strides=(1, 5))
    with pytest.raises(ValueError, match="code_channels"):
        FrameAutoencoderConfig(code_channels=0)
    with pytest.raises(ValueError, match="unknown|no field"):
        FrameAutoencoderConfig.from_dict({"latent_dim": 4})


def test_frame_autoencoder_rejects_bad_shapes():
    model = FrameAutoencoder(FrameAutoencoderConfig())
    with pytest.raises(ValueError, match=r"expected \[batch, 1, 3000\]"):
        model.encode(torch.zeros(2, 3000))
    with pytest.raises(ValueError, match=r"expected \[batch, 2, 8\]"):
        model.decode(torch.zeros(2, 2, 9))


# ----------------------------------------------------------------------------- the linear VAE's depth
@pytest.mark.parametrize("layers", [1, 2, 15])
def test_linear_waveform_vae_hidden_layers(layers):
    model = WaveformVAE(WaveformVAEConfig(kind="linear", n_samples=200, hidden=16, latent_dim=4, hidden_layers=layers))
    linear = [m for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert len(linear) == layers and len([m for m in model.decoder if isinstance(m, torch.nn.Linear)]) == layers + 1
    assert model.decode(torch.zeros(2, 4)).shape == (2, 1, 200)


def test_linear_waveform_vae_default_keeps_its_weight_names():
    """Two hidden layers, as before the setting existed: older checkpoints still load."""
    names = set(WaveformVAE(WaveformVAEConfig(kind="linear")).state_dict())
    assert {"encoder.1.weight", "encoder.3.weight", "decoder.0.weight", "decoder.2.weight", "decoder.4.weight"} <= names
    assert "encoder.5.weight" not in names and "decoder.6.weight" not in names
    with pytest.raises(ValueError, match="hidden_layers"):
        WaveformVAEConfig(kind="linear", hidden_layers=0)


# ----------------------------------------------------------------------------- losses and measurements
def test_mse_loss_of_a_silent_model_is_the_power():
    x = _tones(220.0, 330.0)
    parts = R.mse_loss(lambda clips: torch.zeros_like(clips), {"audio": x})
    assert torch.isclose(parts["loss"], x.pow(2).mean()) and torch.equal(parts["loss"], parts["mse"])


def test_spectral_loss_forgives_the_phase_that_mse_punishes():
    x = _tones(220.0)
    shifted = torch.roll(x, 7, dims=-1)  # the same tone, a third of a cycle later
    spectral = R.spectral_loss(lambda clips: shifted, {"audio": x})
    other = R.spectral_loss(lambda clips: _tones(247.0), {"audio": x})
    assert float(spectral["mse"]) > float(x.pow(2).mean())  # farther than silence by squared error
    assert float(spectral["loss"]) < 0.2 * float(other["loss"])  # yet close by the spectral distance


def test_spectral_convergence_loss_adds_linear_magnitudes_that_weigh_the_loud_partials():
    x = _tones(220.0)
    half = 0.5 * x  # right partials, 6 dB too quiet: log magnitudes off by log 2 everywhere, linear ones by half
    log_only = R.spectral_loss(lambda clips: half, {"audio": x})
    both = R.spectral_convergence_loss(lambda clips: half, {"audio": x})
    assert torch.equal(both["mse"], log_only["mse"])
    assert float(both["loss"] - log_only["loss"]) == pytest.approx(0.5, abs=0.01)  # ||0.5 |X| - |X||| / ||X|| = 0.5
    assert float(R.spectral_convergence_loss(lambda clips: x.clone(), {"audio": x})["loss"]) < 1e-3
    assert set(R.LOSSES) == {R.FRAME_AES[name][1] for name in R.FRAME_AES}  # every loss a recipe names, and no other


def test_reflect_padded_loss_matches_librosa_and_differs_from_zero_padding_only_at_a_step():
    import librosa

    x = 0.3 + _tones(220.0)  # starts and ends at 0.3: zero padding puts a step at both ends
    y = 0.5 * x
    def log_magnitudes(clip, n_fft):
        return np.log(np.abs(librosa.stft(clip[0, 0].numpy(), n_fft=n_fft, center=True, pad_mode="reflect")) + 1e-3)

    expected = np.mean([np.abs(log_magnitudes(y, n) - log_magnitudes(x, n)).mean() for n in R.SPECTRAL_FFTS])
    reflected = float(R.LOSSES["spectral, reflect-padded"](lambda clips: y, {"audio": x})["loss"])
    assert reflected == pytest.approx(expected, rel=1e-3)
    assert float(R.LOSSES["spectral"](lambda clips: y, {"audio": x})["loss"]) != pytest.approx(reflected, rel=1e-3)
    tone = _tones(220.0)  # starts at 0: no step, and a mirrored sine is the sine continued
    zero_padded = float(R.LOSSES["spectral"](lambda clips: 0.5 * tone, {"audio": tone})["loss"])
    assert float(R.LOSSES["spectral, reflect-padded"](lambda clips: 0.5 * tone, {"audio": tone})["loss"]) == \
        pytest.approx(zero_padded, rel=0.05)


def test_measure_reconstructions_known_values():
    x = _tones(220.0, 262.0, 330.0)
    perfect = R.measure_reconstructions(x.clone(), x, pitch_windows=0)
    assert perfect["mse_over_silence"] == 0 and perfect["error_percent"] == 0 and perfect["referee_ratio"] < 1e-3
    silent = R.measure_reconstructions(torch.full_like(x, 0.04), x, pitch_windows=0)
    expected = 100 * math.sqrt(float((x - 0.04).pow(2).mean()))
    assert silent["mean"] == pytest.approx(0.04) and silent["error_percent"] == pytest.approx(expected, abs=1e-4)
    assert silent["mse_over_silence"] == pytest.approx(1 + 0.04**2 / float(x.pow(2).mean()), rel=1e-3)


def test_measure_reconstructions_judges_pitch_on_all_clips_unless_told_how_many():
    x = _tones(220.0, 330.0, 262.0)
    y = torch.cat([x[:1], _tones(247.0, 294.0)])  # only the first clip keeps its pitch
    assert "pitch_kept" not in R.measure_reconstructions(y, x, pitch_windows=0)
    every = R.measure_reconstructions(y, x)  # the default: all three clips
    assert every["pitch_windows"] == 3 and every["pitch_kept"] == pytest.approx(1 / 3, abs=0.03)
    first = R.measure_reconstructions(y, x, pitch_windows=1)
    assert first["pitch_windows"] == 1 and first["pitch_kept"] == 1.0
    assert first["mse_over_silence"] == every["mse_over_silence"]  # the other numbers use every clip regardless
    with pytest.raises(ValueError, match="pitch_windows=4"):
        R.measure_reconstructions(y, x, pitch_windows=4)


def test_measure_vae_passes_pitch_windows_on():
    torch.manual_seed(0)
    model = WaveformVAE(WaveformVAEConfig(kind="conv", variance="isotropic"))
    x = _tones(220.0, 330.0)
    assert "pitch_kept" not in R.measure_vae(model, x, beta=1.0, pitch_windows=0)
    measured = R.measure_vae(model, x, beta=1.0, pitch_windows=1)
    assert measured["pitch_windows"] == 1 and 0 <= measured["pitch_kept"] <= 1 and measured["beta"] == 1.0


def test_pitch_frames_kept():
    x = _tones(220.0, 330.0)
    assert R.pitch_frames_kept(x, x)["fraction"] == 1.0
    assert R.pitch_frames_kept(x, _tones(247.0, 370.0))["fraction"] == 0.0  # a whole tone away: 200 cents
    silent = R.pitch_frames_kept(x, torch.zeros_like(x))
    assert silent["kept"] == 0 and silent["voiced"] > 80  # 2 clips of 50 CREPE frames, nearly all voiced
    with pytest.raises(ValueError, match="one shape"):
        R.pitch_frames_kept(x, x[:1])


# ----------------------------------------------------------------------------- data and loader
def test_raw_audio_windows_hold_out_every_tenth_piece():
    data = R.raw_audio_windows(n_pieces=10, windows_per_piece=2, test_windows_per_piece=3)
    assert data["test"].shape == (3, 1, 3000) and len(data["test_pieces"]) == 1
    assert len(data["train"]) == 9 * 2 and {data["train"][i]["source_index"] for i in range(18)} == set(range(9))
    assert all(float(w.pow(2).mean().log10() * 10) >= -40 for w in data["test"])
    with pytest.raises(ValueError, match="at least 10 pieces"):
        R.raw_audio_windows(n_pieces=4)


def test_window_loader_moves_windows_every_epoch_and_repeats_with_its_seed():
    data = R.raw_audio_windows(n_pieces=10, windows_per_piece=2, test_windows_per_piece=1)

    def epochs(n: int) -> list[torch.Tensor]:
        loader = R.WindowLoader(data["train"], batch_size=18, seed=3)
        return [next(iter(loader))["audio"] for _ in range(n)]

    first, again = epochs(2), epochs(2)
    assert not torch.equal(first[0], first[1])  # new cuts in the second epoch
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    with pytest.raises(TypeError, match="set_epoch"):
        R.WindowLoader(torch.utils.data.TensorDataset(torch.zeros(4, 1, 3000)))


def test_recipes_are_registered():
    for name in [*R.VAES, *R.FRAME_AES]:
        assert name in RECIPES and "lesson 03" in RECIPES[name].description


# ----------------------------------------------------------------------------- the controlled runs of section 3
def test_kl_warmup_ramps_beta_over_training_steps_only():
    model = WaveformVAE(WaveformVAEConfig(kind="linear", n_samples=200, hidden=16, latent_dim=4))
    batch = {"audio": _tones(220.0, 330.0, seconds=200 / SR)}
    warmup = R.KLWarmup(4)
    model.train()
    betas = []
    for _ in range(6):
        torch.manual_seed(0)
        parts = warmup(model, batch)
        betas.append(float(parts["beta"]))
        assert torch.isclose(parts["loss"], parts["recon"] + parts["beta"] * parts["kl"])
    assert betas == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    model.eval()
    assert float(warmup(model, batch)["beta"]) == 1.0 and warmup.step == 6  # held-out batches do not count
    assert float(R.KLWarmup(8, beta=0.5)(model, batch)["beta"]) == 0.0
    with pytest.raises(ValueError, match="warmup_steps"):
        R.KLWarmup(0)


def test_each_controlled_run_changes_one_thing_of_raw_conv_vae():
    base_config, base_beta, base_steps = R.VAES["raw_conv_vae"]
    base = base_config.to_dict()
    changed = {}
    for name, (model_config, beta, steps, warmup, *seed) in R.CONTROLS.items():
        assert steps == base_steps == 4000 and RECIPES[name].description.startswith("lesson 03")
        diff = {k: v for k, v in model_config.to_dict().items() if base[k] != v}
        changed[name] = (diff, beta, warmup, *seed)
    assert changed == {
        "raw_conv_vae_fixed05": ({"variance": "fixed", "output_sigma": 0.05}, base_beta, 0),
        "raw_conv_vae_fixed24": ({"variance": "fixed", "output_sigma": 0.24}, base_beta, 0),
        "raw_conv_vae_warmup": ({}, base_beta, 2000),
        "raw_conv_beta0_learned": ({}, 0.0, 0),
        "raw_conv_vae_start24": ({"output_sigma": 0.24}, base_beta, 0),
        "raw_conv_vae_seed1": ({}, base_beta, 0, 1),  # nothing but the seed: the initial weights and the order
    }


@pytest.fixture(scope="module")
def held_out_windows() -> torch.Tensor:
    return R.raw_audio_windows()["test"]


@pytest.mark.parametrize("name", ["raw_conv_vae", *R.CONTROLS])
def test_the_shipped_conv_vaes_reproduce_their_recorded_metrics(held_out_windows, name):
    from coursekit import checkpoints, config
    from coursekit.losses import kl_divergence
    from coursekit.metrics import active_units
    from coursekit.models.waveform import build_waveform_vae

    entry = checkpoints.list_pretrained()[name]
    assert (config.checkpoint_dir() / entry["file"]).stat().st_size == entry["size_bytes"] < 10 * 2**20
    model, ckpt = checkpoints.load_pretrained(name, build_waveform_vae)
    recorded = ckpt["metrics"]
    assert recorded["steps"] == recorded["history"][-1]["steps"] == 4000
    clips = held_out_windows
    measured = R.measure_reconstructions(R.reconstruct(model, clips), clips, pitch_windows=0)
    with torch.no_grad():
        mu, logvar = model.encode(clips)
    assert measured["mse_over_silence"] == pytest.approx(recorded["mse_over_silence"], abs=2e-4)
    assert measured["rms_db"] == pytest.approx(recorded["rms_db"], abs=0.05)
    assert float(kl_divergence(mu, logvar)) == pytest.approx(recorded["kl"], abs=0.05 + 1e-3 * recorded["kl"])
    assert active_units(mu)[0] == recorded["active_units"]
    sigma = float(torch.exp(0.5 * model.output_log_variance().detach()).mean())
    assert sigma == pytest.approx(recorded["sigma"], abs=1e-4)
