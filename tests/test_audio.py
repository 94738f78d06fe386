"""coursekit.audio: file I/O, basic operations, companding, spectrograms, spectral distance."""

from __future__ import annotations

import io
import math
import re

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from IPython.display import Audio

from coursekit import audio, metrics, synth

SR = 16000
PCM16_STEP = 1 / 32768


def noise(rng, *shape, scale=0.5):
    return (torch.rand(*shape, generator=rng) * 2 - 1) * scale


def faded_tone(f0, phases, duration=0.5, fade_s=0.02):
    """A harmonic tone with linear fades, so that no frame sees an abrupt start or end."""
    x = synth.harmonic_tone(f0, duration, SR, phases=phases)
    n_fade = int(fade_s * SR)
    ramp = torch.linspace(0, 1, n_fade)
    x[:n_fade] *= ramp
    x[-n_fade:] *= ramp.flip(0)
    return x


# ----------------------------------------------------------------------------- save and load
def test_save_load_round_trip_pcm16_within_one_step(tmp_path, rng):
    x = noise(rng, 2, 4000, scale=1.0)
    audio.save(tmp_path / "x.wav", x, SR)
    y, sr = audio.load(tmp_path / "x.wav", mono=False)
    assert sr == SR
    assert y.shape == x.shape and y.dtype == torch.float32
    torch.testing.assert_close(y, x, atol=PCM16_STEP, rtol=0)


def test_save_load_round_trip_float_is_exact(tmp_path, rng):
    x = noise(rng, 2, 4000, scale=1.0)
    audio.save(tmp_path / "x.wav", x, SR, subtype="FLOAT")
    y, _ = audio.load(tmp_path / "x.wav", mono=False)
    assert torch.equal(y, x)


def test_save_returns_path_and_a_one_dimensional_signal_loads_as_one_channel(tmp_path, rng):
    x = noise(rng, 1000)
    path = audio.save(tmp_path / "sub" / "x.flac", x, SR)
    assert path == tmp_path / "sub" / "x.flac"
    y, _ = audio.load(path)
    assert y.shape == (1, 1000)
    torch.testing.assert_close(y[0], x, atol=PCM16_STEP, rtol=0)


def test_load_stereo_as_mono_is_the_channel_mean(tmp_wav):
    left = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    right = np.full(1000, 0.25, dtype=np.float32)
    path = tmp_wav(np.stack([left, right], axis=1), subtype="FLOAT")
    y, _ = audio.load(path)
    assert y.shape == (1, 1000)
    torch.testing.assert_close(y[0], torch.from_numpy((left + right) / 2))


def test_load_keeps_channels_when_mono_is_false(tmp_wav):
    data = np.stack([np.full(100, 0.5), np.full(100, -0.25)], axis=1)
    y, _ = audio.load(tmp_wav(data, subtype="FLOAT"), mono=False)
    torch.testing.assert_close(y, torch.tensor(data.T, dtype=torch.float32))


def test_load_int16_file_scales_to_unit_range(tmp_wav):
    data = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    y, _ = audio.load(tmp_wav(data))
    assert y.dtype == torch.float32
    torch.testing.assert_close(y[0], torch.tensor(data / 32768, dtype=torch.float32), atol=0, rtol=0)
    assert y.min() == -1.0 and y.max() < 1.0


@pytest.mark.parametrize("target_sr", [8000, 22050])
def test_load_with_sr_resamples_length_and_keeps_frequency(tmp_wav, peak_hz, target_sr):
    path = tmp_wav(synth.sine(1000, 0.5, SR).numpy(), subtype="FLOAT")
    y, sr = audio.load(path, sr=target_sr)
    assert sr == target_sr
    assert y.shape == (1, target_sr // 2)
    assert abs(peak_hz(y, sr) - 1000) <= sr / y.shape[-1]


def test_load_with_the_file_rate_returns_the_samples_unchanged(tmp_wav, rng):
    data = noise(rng, 500).numpy()
    y, sr = audio.load(tmp_wav(data, subtype="FLOAT"), sr=SR)
    assert sr == SR
    assert torch.equal(y[0], torch.from_numpy(data))


def test_save_leaves_no_temporary_file(tmp_path, rng):
    audio.save(tmp_path / "x.wav", noise(rng, 1000), SR)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_save_failure_creates_no_destination_and_no_temporary(tmp_path, monkeypatch, rng):
    def failing_write(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(audio.files.sf, "write", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        audio.save(tmp_path / "x.wav", noise(rng, 1000), SR)
    assert list(tmp_path.iterdir()) == []


def test_save_failure_keeps_the_previous_file_intact(tmp_path, monkeypatch, rng):
    path = audio.save(tmp_path / "x.wav", noise(rng, 1000), SR)
    before = path.read_bytes()

    def failing_write(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(audio.files.sf, "write", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        audio.save(path, noise(rng, 1000), SR)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_save_refuses_to_clip_pcm16_and_names_the_fix(tmp_path):
    x = torch.tensor([0.0, 1.5, -0.5])
    with pytest.raises(ValueError, match=r"peaks at 1\.500 > 1\.0 and would clip in PCM_16: .*peak_normalize"):
        audio.save(tmp_path / "x.wav", x, SR)
    assert not (tmp_path / "x.wav").exists()


def test_save_float_keeps_values_above_one(tmp_path):
    x = torch.tensor([0.0, 1.5, -2.0])
    y, _ = audio.load(audio.save(tmp_path / "x.wav", x, SR, subtype="FLOAT"))
    assert torch.equal(y[0], x)


def test_save_rejects_batched_signals(tmp_path):
    expected = r"shape \[1, 1, 10\] \(rank 3\); expected \[samples\] or \[channels, samples\]\."
    with pytest.raises(ValueError, match=expected):
        audio.save(tmp_path / "x.wav", torch.zeros(1, 1, 10), SR)


def test_load_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError, match=re.escape(f"audio file not found: {path}. Check the path")):
        audio.load(path)


def test_load_directory_says_it_is_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match=re.escape(f"{tmp_path} is a folder; pass one audio file")):
        audio.load(tmp_path)


def test_load_empty_file_says_it_is_empty(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(ValueError, match=re.escape(f"audio file {path} is empty (0 bytes): re-export")):
        audio.load(path)


def test_load_file_without_samples_says_so(tmp_wav):
    path = tmp_wav(np.zeros((0, 1)))
    with pytest.raises(ValueError, match=re.escape(f"audio file {path} holds no samples")):
        audio.load(path)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning")
def test_load_corrupt_file_says_it_could_not_read_and_suggests_conversion(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError, match=re.escape(f"could not read audio file {path}") + r".*ffmpeg -i corrupt\.wav"):
        audio.load(path)


def test_load_file_with_nan_samples_is_rejected(tmp_wav):
    data = np.array([0.1, np.nan, 0.2, np.inf], dtype=np.float32)
    path = tmp_wav(data, subtype="FLOAT")
    with pytest.raises(ValueError, match=re.escape(f"{path} contains 2 NaN or inf samples")):
        audio.load(path)


# ----------------------------------------------------------------------------- play
def test_play_returns_an_audio_player_with_the_samples(rng):
    x = noise(rng, 2, 1000)
    player = audio.play(x, SR)
    assert isinstance(player, Audio)
    data, rate = sf.read(io.BytesIO(player.data), always_2d=True)
    assert rate == SR
    np.testing.assert_allclose(data.T, x.numpy(), atol=2 * PCM16_STEP, rtol=0)


def test_play_scales_down_signals_louder_than_full_scale(rng):
    x = noise(rng, 1000, scale=1.0) * 3
    data, _ = sf.read(io.BytesIO(audio.play(x, SR).data))
    np.testing.assert_allclose(data, (x / x.abs().max()).numpy(), atol=2 * PCM16_STEP, rtol=0)


def test_play_refuses_rates_browsers_cannot_play():
    with pytest.raises(ValueError, match=r"sr=2000 Hz: browsers refuse to play audio below 3,000 Hz.*resample"):
        audio.play(torch.zeros(100), 2000)


# ----------------------------------------------------------------------------- resample
def test_resample_keeps_a_sine_frequency_and_scales_length(peak_hz):
    y = audio.resample(synth.sine(1000, 0.5, SR), SR, 8000)
    assert y.shape == (4000,)
    assert abs(peak_hz(y, 8000) - 1000) <= 8000 / 4000


def test_resample_removes_content_above_the_new_nyquist():
    above = audio.resample(synth.sine(5000, 0.5, SR), SR, 8000)
    below = audio.resample(synth.sine(3000, 0.5, SR), SR, 8000)
    input_db = float(audio.rms_db(synth.sine(5000, 0.5, SR)))
    edge = 20  # the filter's transient at each end, about 2.5 ms
    assert float(audio.rms_db(above[edge:-edge])) < input_db - 40
    assert float(audio.rms_db(below[edge:-edge])) == pytest.approx(input_db, abs=0.5)


def test_resample_round_trip_reconstructs_a_band_limited_signal():
    x = synth.sine(1000, 0.5, SR)
    y = audio.resample(audio.resample(x, SR, 44100), 44100, SR)
    assert y.shape == x.shape
    torch.testing.assert_close(y[200:-200], x[200:-200], atol=1e-3, rtol=0)


def test_resample_to_same_rate_returns_input(rng):
    x = noise(rng, 100)
    assert audio.resample(x, SR, SR) is x


# ----------------------------------------------------------------------------- simple operations
@pytest.mark.parametrize(("shape", "expected"), [((100,), (1, 100)), ((2, 100), (1, 100)), ((3, 2, 100), (3, 1, 100))])
def test_to_mono_shapes(rng, shape, expected):
    assert audio.to_mono(noise(rng, *shape)).shape == expected


def test_to_mono_keeps_a_one_dimensional_signal(rng):
    x = noise(rng, 100)
    assert torch.equal(audio.to_mono(x)[0], x)


def test_to_mono_averages_the_channels_of_each_batch_item():
    x = torch.zeros(3, 2, 4)
    x[:, 0] = torch.tensor([1.0, 0.5, 0.0, -1.0])
    x[:, 1] = torch.tensor([0.0, 0.5, 1.0, 1.0])
    expected = torch.tensor([0.5, 0.5, 0.5, 0.0]).expand(3, 1, 4)
    assert torch.equal(audio.to_mono(x), expected)


@pytest.mark.parametrize("peak", [1.0, 0.5])
def test_peak_normalize_reaches_the_peak_and_keeps_the_shape_of_the_wave(rng, peak):
    x = noise(rng, 1000, scale=0.3)
    y = audio.peak_normalize(x, peak)
    assert float(y.abs().max()) == pytest.approx(peak, rel=1e-6)
    torch.testing.assert_close(y, x * (peak / x.abs().max()))


def test_peak_normalize_normalises_each_item_of_a_batch(rng):
    x = noise(rng, 3, 1, 500) * torch.tensor([0.1, 0.5, 2.0]).reshape(3, 1, 1)
    peaks = audio.peak_normalize(x).abs().amax(dim=-1)
    torch.testing.assert_close(peaks, torch.ones(3, 1))


def test_peak_normalize_leaves_silence_unchanged():
    silence = torch.zeros(2, 100)
    assert torch.equal(audio.peak_normalize(silence), silence)


def test_rms_db_of_full_scale_sine_is_minus_3_01_db():
    x = synth.sine(1000, 0.5, SR, amp=1.0)  # exactly 500 periods
    assert float(audio.rms_db(x)) == pytest.approx(10 * math.log10(0.5), abs=1e-3)


def test_rms_db_of_constant_is_20_log10_of_its_value():
    levels = audio.rms_db(torch.tensor([[0.1] * 10, [-0.01] * 10]))
    torch.testing.assert_close(levels, torch.tensor([-20.0, -40.0]))


@pytest.mark.parametrize("target_db", [-20.0, -35.5])
def test_rms_normalize_hits_the_target(rng, target_db):
    x = noise(rng, 2, 2000) * torch.tensor([[0.01], [0.8]])
    levels = audio.rms_db(audio.rms_normalize(x, target_db))
    torch.testing.assert_close(levels, torch.full((2,), target_db), atol=1e-3, rtol=0)


def test_rms_normalize_leaves_silence_unchanged():
    silence = torch.zeros(100)
    assert torch.equal(audio.rms_normalize(silence), silence)


def test_trim_or_pad_cuts_the_end(rng):
    x = noise(rng, 2, 100)
    assert torch.equal(audio.trim_or_pad(x, 60), x[:, :60])


def test_trim_or_pad_pads_zeros_at_the_end(rng):
    x = noise(rng, 2, 100)
    y = audio.trim_or_pad(x, 150)
    assert y.shape == (2, 150)
    assert torch.equal(y[:, :100], x)
    assert torch.equal(y[:, 100:], torch.zeros(2, 50))


@pytest.mark.parametrize("n_samples", [0, -5])
def test_trim_or_pad_rejects_non_positive_length(rng, n_samples):
    with pytest.raises(ValueError, match=rf"n_samples={n_samples}: the target length must be positive"):
        audio.trim_or_pad(noise(rng, 100), n_samples)


def test_random_crop_is_deterministic_under_a_seeded_generator():
    x = torch.arange(1000, dtype=torch.float32)
    first = audio.random_crop(x, 100, generator=torch.Generator().manual_seed(5))
    second = audio.random_crop(x, 100, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, second)


def test_random_crop_is_a_contiguous_window_shared_by_all_channels(rng):
    x = torch.stack([torch.arange(1000.0), -torch.arange(1000.0)])
    for _ in range(20):
        y = audio.random_crop(x, 100, generator=rng)
        start = int(y[0, 0])
        assert torch.equal(y, x[:, start : start + 100])


def test_random_crop_reaches_every_start_including_the_last(rng):
    x = torch.arange(10, dtype=torch.float32)
    starts = {int(audio.random_crop(x, 8, generator=rng)[0]) for _ in range(200)}
    assert starts == {0, 1, 2}


def test_random_crop_pads_short_input(rng):
    x = noise(rng, 100)
    y = audio.random_crop(x, 150, generator=rng)
    assert torch.equal(y[:100], x)
    assert torch.equal(y[100:], torch.zeros(50))


@pytest.mark.parametrize("n_samples", [0, -5])
def test_random_crop_rejects_non_positive_length(n_samples):
    # Library bug: random_crop returns a slice of the wrong length instead of raising as trim_or_pad does.
    with pytest.raises(ValueError, match=rf"n_samples={n_samples}"):
        audio.random_crop(torch.arange(1000.0), n_samples, generator=torch.Generator().manual_seed(0))


# ----------------------------------------------------------------------------- mu-law
def test_mu_law_encode_matches_torchaudio(rng):
    x = torch.cat([torch.linspace(-1, 1, 2001), noise(rng, 2000, scale=1.0)])
    assert torch.equal(audio.mu_law_encode(x), AF.mu_law_encoding(x, quantization_channels=256))


def test_mu_law_encode_uses_all_256_classes():
    classes = audio.mu_law_encode(torch.linspace(-1, 1, 100_001))
    assert classes.dtype == torch.int64
    assert torch.equal(classes.unique(), torch.arange(256))


def test_mu_law_decode_matches_torchaudio():
    classes = torch.arange(256)
    torch.testing.assert_close(audio.mu_law_decode(classes), AF.mu_law_decoding(classes, quantization_channels=256))


def test_mu_law_quantized_round_trip_error_is_within_half_a_step(rng):
    x = torch.cat([torch.linspace(-1, 1, 2001), noise(rng, 2000, scale=1.0), noise(rng, 2000, scale=0.01)])
    error = (audio.mu_law_decode(audio.mu_law_encode(x)) - x).abs()
    # encode rounds y = F(x) to within 1/mu; F^-1 has slope ln(1+mu) (1 + mu|x|) / mu, hence this bound
    bound = (1 + 255 * x.abs()) * (256 ** (1 / 255) - 1) / 255
    assert bool((error <= bound + 1e-6).all())


def test_mu_law_float_mode_is_monotonic_in_unit_range_and_inverts():
    x = torch.linspace(-1, 1, 10_001)
    y = audio.mu_law_encode(x, quantize=False)
    assert y.dtype == torch.float32
    assert float(y[0]) == -1.0 and float(y[-1]) == 1.0
    assert float(audio.mu_law_encode(torch.zeros(1), quantize=False)) == 0.0
    assert bool((y.diff() > 0).all())
    torch.testing.assert_close(audio.mu_law_decode(y), x, atol=1e-5, rtol=0)


def test_mu_law_compress_fixes_zero_and_one_and_expand_inverts():
    mag = torch.linspace(0, 1, 1001)
    y = audio.mu_law_compress(mag, mu=8)
    assert float(y[0]) == 0.0
    assert float(y[-1]) == pytest.approx(1.0, abs=1e-7)
    assert bool((y[1:-1] > mag[1:-1]).all())  # quiet parts are lifted
    torch.testing.assert_close(audio.mu_law_expand(y, mu=8), mag, atol=1e-6, rtol=0)


def test_mu_law_compress_rejects_negative_magnitudes():
    with pytest.raises(ValueError, match=r"mag has negative values: mu_law_compress expects magnitudes \(use \.abs"):
        audio.mu_law_compress(torch.tensor([0.5, -0.1]))


# ----------------------------------------------------------------------------- dB
def test_amplitude_to_db_matches_librosa(rng):
    mag = 10 ** (torch.rand(64, 50, generator=rng) * 6 - 5)  # 1e-5 .. 10, a 120 dB range
    expected = librosa.amplitude_to_db(mag.numpy(), ref=np.max, top_db=70)
    np.testing.assert_allclose(audio.amplitude_to_db(mag, floor_db=-70).numpy(), expected, atol=1e-3, rtol=0)


def test_amplitude_to_db_known_values_with_fixed_reference():
    db = audio.amplitude_to_db(torch.tensor([2.0, 0.2, 0.02, 0.0]), floor_db=None, ref=2.0)
    torch.testing.assert_close(db[:3], torch.tensor([0.0, -20.0, -40.0]))
    assert float(db[3]) < -150  # silence stays far below any floor


def test_amplitude_to_db_rejects_negative_magnitudes():
    with pytest.raises(ValueError, match=r"mag has negative values: amplitude_to_db expects magnitudes"):
        audio.amplitude_to_db(torch.tensor([-1.0]))


def test_db_to_amplitude_inverts_above_the_floor_and_returns_the_floor_below(rng):
    mag = 10 ** (torch.rand(1000, generator=rng) * 6 - 5)
    ref = float(mag.max())
    back = audio.db_to_amplitude(audio.amplitude_to_db(mag, floor_db=-70), ref=ref)
    above = mag > ref * 10 ** (-70 / 20)
    assert above.any() and (~above).any()
    torch.testing.assert_close(back[above], mag[above], rtol=1e-4, atol=0)
    torch.testing.assert_close(back[~above], torch.full_like(back[~above], ref * 10 ** (-70 / 20)), rtol=1e-4, atol=0)


# ----------------------------------------------------------------------------- STFT
@pytest.mark.parametrize(("n_fft", "hop_length"), [(512, 128), (1024, None), (256, 100)])
def test_stft_matches_librosa(n_fft, hop_length):
    x = synth.chirp(100, 6000, 0.5, SR) + 0.1 * synth.sine(3000, 0.5, SR)
    expected = librosa.stft(x.numpy(), n_fft=n_fft, hop_length=hop_length, center=True, pad_mode="constant")
    spec = audio.stft(x, n_fft, hop_length).numpy()
    assert spec.shape == expected.shape == (n_fft // 2 + 1, 1 + len(x) // (hop_length or n_fft // 4))
    np.testing.assert_allclose(spec, expected, atol=1e-5 * np.abs(expected).max(), rtol=0)


def test_stft_reflect_padding_matches_librosa_and_changes_only_the_edge_frames():
    n_fft = 256
    x = 0.5 + synth.sine(440, 0.25, SR)  # starts at 0.5: zero padding puts a step in front of it
    expected = librosa.stft(x.numpy(), n_fft=n_fft, center=True, pad_mode="reflect")
    reflect, constant = audio.stft(x, n_fft, pad_mode="reflect"), audio.stft(x, n_fft)
    np.testing.assert_allclose(reflect.numpy(), expected, atol=1e-5 * np.abs(expected).max(), rtol=0)
    edge = 2  # frames reaching past an end: the centre within n_fft // 2 = 2 hops of it
    torch.testing.assert_close(reflect[:, edge:-edge], constant[:, edge:-edge])
    high = slice(n_fft // 4, None)  # above a quarter of the sample rate: the step's broadband energy
    assert constant[high, 0].abs().sum() > 3 * reflect[high, 0].abs().sum()  # 4.6 times here


def test_stft_rejects_an_unknown_pad_mode():
    with pytest.raises(ValueError, match="pad_mode='edge'.*'constant'.*'reflect'"):
        audio.stft(torch.zeros(1000), 256, pad_mode="edge")


def test_stft_keeps_leading_dimensions(rng):
    x = noise(rng, 2, 3, 2000)
    spec = audio.stft(x, 256)
    assert spec.shape == (2, 3, 129, 1 + 2000 // 64)
    torch.testing.assert_close(spec[1, 2], audio.stft(x[1, 2], 256))


@pytest.mark.parametrize("shape", [(4000,), (2, 4000)])
def test_istft_of_stft_reconstructs_the_signal(rng, shape):
    x = noise(rng, *shape)
    y = audio.istft(audio.stft(x, 512, 128), 512, 128, length=x.shape[-1])
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_magphase_recombines_to_the_complex_spectrum(rng):
    spec = audio.stft(noise(rng, 2000), 256)
    mag, phase = audio.magphase(spec)
    assert bool((mag >= 0).all())
    assert bool((phase.abs() <= math.pi).all())
    torch.testing.assert_close(mag * torch.exp(1j * phase), spec, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "transform",
    [lambda x: audio.stft(x, 1024), lambda x: audio.melspectrogram(x, SR, 1024)],
    ids=["stft", "melspectrogram"],
)
def test_window_longer_than_signal_names_n_fft_and_the_fix(transform):
    with pytest.raises(ValueError, match=r"x has 100 samples but the window is n_fft=1024: use a smaller n_fft or pad"):
        transform(torch.zeros(100))


# ----------------------------------------------------------------------------- mel
def test_hz_to_mel_and_mel_to_hz_match_librosa_htk():
    hz = np.array([0.0, 100.0, 440.0, 700.0, 1000.0, 4000.0, 8000.0, 11025.0])
    mel = audio.hz_to_mel(torch.from_numpy(hz))
    np.testing.assert_allclose(mel.numpy(), librosa.hz_to_mel(hz, htk=True), rtol=1e-12)
    np.testing.assert_allclose(audio.mel_to_hz(mel).numpy(), librosa.mel_to_hz(mel.numpy(), htk=True), rtol=1e-12)


def test_hz_to_mel_known_values_and_inverse():
    assert float(audio.hz_to_mel(700.0)) == pytest.approx(2595 * math.log10(2))
    assert float(audio.hz_to_mel(1000.0)) == pytest.approx(1000, abs=0.05)  # the scale's anchor
    hz = torch.linspace(0, 22050, 101, dtype=torch.float64)
    torch.testing.assert_close(audio.mel_to_hz(audio.hz_to_mel(hz)), hz)


@pytest.mark.parametrize(("n_fft", "hop_length", "n_mels"), [(512, 128, 40), (1024, None, 64)])
def test_melspectrogram_matches_librosa(n_fft, hop_length, n_mels):
    x = synth.chirp(100, 6000, 0.5, SR)
    expected = librosa.feature.melspectrogram(
        y=x.numpy(),
        sr=SR,
        n_fft=n_fft,
        hop_length=hop_length or n_fft // 4,
        n_mels=n_mels,
        htk=True,
        norm=None,
        center=True,
        pad_mode="constant",
        power=2.0,
    )
    mel = audio.melspectrogram(x, SR, n_fft, hop_length, n_mels).numpy()
    assert mel.shape == expected.shape
    np.testing.assert_allclose(mel, expected, rtol=1e-3, atol=1e-5 * expected.max())


# ----------------------------------------------------------------------------- Griffin-Lim
@pytest.fixture
def chirp_mag():
    x = synth.chirp(200, 4000, 0.5, SR)
    return audio.stft(x, 512, 128).abs(), x.shape[-1]


def test_griffin_lim_iterations_lower_spectral_convergence(chirp_mag):
    mag, n = chirp_mag

    def convergence(n_iter):
        y = audio.griffin_lim(mag, 512, 128, n_iter=n_iter, length=n)
        return metrics.spectral_convergence(mag, audio.stft(y, 512, 128).abs())

    random_phase, few, many = convergence(0), convergence(4), convergence(32)
    assert many < few < random_phase
    assert many < 0.5 * random_phase


def test_griffin_lim_same_seed_same_output(chirp_mag):
    mag, n = chirp_mag
    first = audio.griffin_lim(mag, 512, 128, n_iter=4, length=n, seed=3)
    assert torch.equal(first, audio.griffin_lim(mag, 512, 128, n_iter=4, length=n, seed=3))
    assert not torch.equal(first, audio.griffin_lim(mag, 512, 128, n_iter=4, length=n, seed=4))


def test_griffin_lim_seed_leaves_the_global_generator_alone(chirp_mag):
    mag, n = chirp_mag
    torch.manual_seed(9)
    expected = torch.rand(3)
    torch.manual_seed(9)
    audio.griffin_lim(mag, 512, 128, n_iter=2, length=n, seed=0)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("n_iter", [0, 3])
def test_griffin_lim_honours_length(chirp_mag, n_iter):
    mag, n = chirp_mag
    assert audio.griffin_lim(mag, 512, 128, n_iter=n_iter, length=n).shape == (n,)
    assert audio.griffin_lim(mag[None], 512, 128, n_iter=n_iter, length=n - 50).shape == (1, n - 50)


@pytest.mark.parametrize("n_iter", [0, 3])
def test_griffin_lim_honours_a_length_shorter_than_its_frames_cover(chirp_mag, n_iter):
    # Library bug: with n_iter > 0 torchaudio's griffinlim needs 1 + length // hop == frames and fails otherwise.
    mag, n = chirp_mag
    assert audio.griffin_lim(mag, 512, 128, n_iter=n_iter, length=n // 2).shape == (n // 2,)


def test_griffin_lim_rejects_negative_iterations(chirp_mag):
    with pytest.raises(ValueError, match=r"n_iter=-1 must be >= 0"):
        audio.griffin_lim(chirp_mag[0], 512, 128, n_iter=-1)


# ----------------------------------------------------------------------------- spectral distance
@pytest.fixture
def tones(rng):
    """Two 220 Hz tones differing only in their harmonics' phases, and a 311 Hz tone."""
    phases_a, phases_b = (torch.rand(8, generator=rng) * 2 * math.pi for _ in range(2))
    return faded_tone(220, phases_a), faded_tone(220, phases_b), faded_tone(311, phases_a)


def test_spectral_distance_is_zero_for_identical_and_negated_signals(tones):
    x = tones[0]
    assert float(audio.spectral_distance(x, x.clone())) == 0.0
    assert float(audio.spectral_distance(x, -x)) == 0.0


def test_spectral_distance_ignores_phase_but_not_pitch(tones):
    x, rephased, other_pitch = tones
    assert metrics.snr_db(x, rephased) < 3  # the waveforms differ ...
    assert float(audio.spectral_distance(x, rephased)) < 0.2 * float(audio.spectral_distance(x, other_pitch))


@pytest.mark.parametrize(("n_fft", "eps"), [(1024, 1e-3), (256, 1e-2)])
def test_spectral_distance_matches_a_librosa_reference(tones, n_fft, eps):
    x, _, y = tones
    mag_x, mag_y = (
        np.abs(librosa.stft(s.numpy(), n_fft=n_fft, hop_length=n_fft // 4, center=True, pad_mode="constant"))
        for s in (x, y)
    )
    expected = np.mean(np.abs(np.log(mag_x + eps) - np.log(mag_y + eps)))
    assert float(audio.spectral_distance(x, y, n_fft, eps=eps)) == pytest.approx(expected, rel=1e-4)


def test_spectral_distance_rejects_shape_mismatch():
    with pytest.raises(ValueError, match=r"x has shape \[100\] but y has \[101\]: they must match"):
        audio.spectral_distance(torch.zeros(100), torch.zeros(101), n_fft=64)


def test_spectral_distance_passes_gradients(tones):
    x = tones[0].clone().requires_grad_(True)
    audio.spectral_distance(x, tones[2]).backward()
    assert bool(torch.isfinite(x.grad).all())
    assert float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("kwargs", "n_ffts"),
    [({}, (2048, 1024, 512, 256, 128)), ({"n_ffts": (512, 64)}, (512, 64))],
    ids=["default", "custom"],
)
def test_multi_resolution_spectral_distance_is_the_mean_over_window_sizes(tones, kwargs, n_ffts):
    x, _, y = tones
    expected = np.mean([float(audio.spectral_distance(x, y, n, n // 4)) for n in n_ffts])
    assert float(audio.multi_resolution_spectral_distance(x, y, **kwargs)) == pytest.approx(expected, rel=1e-6)


def test_multi_resolution_spectral_distance_rejects_empty_n_ffts():
    with pytest.raises(ValueError, match="n_ffts is empty: give at least one window size"):
        audio.multi_resolution_spectral_distance(torch.zeros(100), torch.zeros(100), n_ffts=())


# ----------------------------------------------------------------------------- input checks across functions
SIGNAL_FUNCTIONS = {
    "check_signal": audio.check_signal,
    "to_mono": audio.to_mono,
    "peak_normalize": audio.peak_normalize,
    "rms_db": audio.rms_db,
    "trim_or_pad": lambda x: audio.trim_or_pad(x, 10),
    "random_crop": lambda x: audio.random_crop(x, 10),
    "resample": lambda x: audio.resample(x, SR, 8000),
    "mu_law_encode": audio.mu_law_encode,
    "stft": lambda x: audio.stft(x, 64),
    "melspectrogram": lambda x: audio.melspectrogram(x, SR, 64, n_mels=8),
    "play": lambda x: audio.play(x, SR),
    "spectral_distance": lambda x: audio.spectral_distance(x, x, n_fft=64),
}
signal_functions = pytest.mark.parametrize("function", SIGNAL_FUNCTIONS.values(), ids=SIGNAL_FUNCTIONS.keys())


@signal_functions
def test_non_tensor_input_raises_type_error_suggesting_as_tensor(function):
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor, got ndarray: wrap it with torch.as_tensor\(x"):
        function(np.zeros(100, dtype=np.float32))


@signal_functions
def test_integer_tensor_raises_type_error_suggesting_float(function):
    with pytest.raises(TypeError, match=r"x must be a float tensor, got torch.int64: use x.float\(\)"):
        function(torch.zeros(100, dtype=torch.int64))


@signal_functions
@pytest.mark.parametrize(("shape", "rank"), [((), 0), ((1, 1, 1, 100), 4)])
def test_wrong_rank_raises_value_error_naming_the_shape(function, shape, rank):
    expected = rf"x has shape {re.escape(str(list(shape)))} \(rank {rank}\); expected \[samples\]"
    with pytest.raises(ValueError, match=expected):
        function(torch.zeros(shape))


@signal_functions
def test_empty_signal_raises_value_error(function):
    with pytest.raises(ValueError, match=r"x is empty \(0 samples\)"):
        function(torch.zeros(2, 0))


@signal_functions
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_samples_raise_value_error_suggesting_nan_to_num(function, bad):
    x = torch.zeros(100)
    x[[3, 50]] = bad
    with pytest.raises(ValueError, match=r"x contains 2 NaN or inf samples: .*torch.nan_to_num\(x\)"):
        function(x)


@pytest.mark.parametrize("sr", [0, -1, 1.5, math.nan])
def test_check_sr_rejects_invalid_rates_with_an_example(sr):
    expected = rf"sr={sr} is not a valid sample rate: use a positive whole number of Hz, e\.g\. 16000"
    with pytest.raises(ValueError, match=expected):
        audio.check_sr(sr)


@pytest.mark.parametrize("sr", ["16000", True, None])
def test_check_sr_rejects_non_numbers(sr):
    with pytest.raises(TypeError, match=rf"sr must be a number of Hz, got {type(sr).__name__}"):
        audio.check_sr(sr)


@pytest.mark.parametrize("sr", [16000, 16000.0, np.int64(16000), np.float32(16000)])
def test_check_sr_returns_whole_rates_as_int(sr):
    result = audio.check_sr(sr)
    assert result == 16000 and type(result) is int


@pytest.mark.parametrize(
    ("function", "name"),
    [
        (lambda sr: audio.resample(torch.zeros(100), sr, SR), "orig_sr"),
        (lambda sr: audio.resample(torch.zeros(100), SR, sr), "target_sr"),
        (lambda sr: audio.melspectrogram(torch.zeros(100), sr, 64), "sr"),
        (lambda sr: audio.play(torch.zeros(100), sr), "sr"),
    ],
    ids=["resample-orig", "resample-target", "melspectrogram", "play"],
)
@pytest.mark.parametrize("sr", [0, -1, 1.5])
def test_functions_reject_invalid_sample_rates_naming_the_argument(function, name, sr):
    with pytest.raises(ValueError, match=rf"^{name}={sr} is not a valid sample rate"):
        function(sr)


def test_save_rejects_invalid_sample_rate_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"sr=1\.5 is not a valid sample rate"):
        audio.save(tmp_path / "x.wav", torch.zeros(100), 1.5)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- silent bad input
def truncate(path, fraction=0.5):
    """Cut a file to ``fraction`` of its bytes, as an interrupted copy or download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def test_load_truncated_wav_names_the_file_the_frame_counts_and_the_fix(tmp_wav):
    # 32000 stereo PCM_16 frames: a 44-byte header and 128000 bytes of samples; half the file keeps 15994 frames
    path = truncate(tmp_wav(np.full((32000, 2), 0.25)))
    expected = (
        f"audio file {path} is truncated: its header declares 32000 frames but the file holds only 15994 (50%). "
        "It was cut short (an interrupted copy, download or export): re-copy it from the original, or re-export it."
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        audio.load(path)


@pytest.mark.parametrize(
    ("name", "subtype"), [("x.wav", "FLOAT"), ("x.wav", "PCM_24"), ("x.aiff", "PCM_16"), ("x.aiff", "FLOAT")]
)
@pytest.mark.parametrize("fraction", [0.5, 0.99])
def test_load_truncated_wav_and_aiff_files_raise(tmp_wav, name, subtype, fraction):
    path = truncate(tmp_wav(np.full((4000, 2), 0.25), subtype=subtype, name=name), fraction)
    with pytest.raises(ValueError, match=re.escape(f"audio file {path} is truncated: its header declares 4000 frames")):
        audio.load(path, mono=False)


@pytest.mark.parametrize("size", [0xFFFFFFFF])
def test_load_wav_with_a_streaming_placeholder_data_size_reads_every_frame(tmp_wav, size):
    # Writers that cannot seek back (pipes) leave the data size as 0xFFFFFFFF: that is not truncation.
    data = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    path = tmp_wav(data, subtype="FLOAT")
    raw = bytearray(path.read_bytes())
    start = raw.index(b"data")
    raw[start + 4 : start + 8] = size.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    y, _ = audio.load(path)
    assert torch.equal(y[0], torch.from_numpy(data))


def test_load_wav_with_a_chunk_after_the_samples_is_not_truncated(tmp_wav):
    data = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    path = tmp_wav(data, subtype="FLOAT")
    path.write_bytes(path.read_bytes() + b"LIST" + (4).to_bytes(4, "little") + b"INFO")
    y, _ = audio.load(path)
    assert torch.equal(y[0], torch.from_numpy(data))


def test_declared_frames_reads_wav_and_aiff_headers_and_not_others(tmp_wav):
    assert audio.declared_frames(tmp_wav(np.zeros((300, 2)), name="a.wav")) == 300
    assert audio.declared_frames(tmp_wav(np.zeros(300), subtype="FLOAT", name="b.aiff")) == 300
    assert audio.declared_frames(truncate(tmp_wav(np.zeros(300), name="c.wav"))) == 300
    assert audio.declared_frames(tmp_wav(np.zeros(300), name="d.flac")) is None


@pytest.mark.parametrize("function", SIGNAL_FUNCTIONS.values(), ids=SIGNAL_FUNCTIONS.keys())
def test_samples_by_channels_layout_is_caught_and_suggests_the_transpose(function):
    expected = "x has shape [32000, 2]: coursekit expects [channels, samples], not 32000 channels of 2 samples."
    with pytest.raises(ValueError, match=re.escape(expected) + r" .*Did you mean x\.T\?"):
        function(torch.zeros(32000, 2))


def test_save_catches_a_samples_by_channels_layout_before_writing(tmp_path):
    with pytest.raises(ValueError, match=re.escape("x has shape [32000, 2]: coursekit expects [channels, samples]")):
        audio.save(tmp_path / "x.wav", torch.zeros(32000, 2), SR)
    assert list(tmp_path.iterdir()) == []


def test_batched_samples_by_channels_layout_suggests_transpose_1_2():
    expected = "x has shape [4, 16000, 1]: coursekit expects [batch, channels, samples]"
    with pytest.raises(ValueError, match=re.escape(expected) + r".*Did you mean x\.transpose\(1, 2\)\?"):
        audio.check_signal(torch.zeros(4, 16000, 1))


@pytest.mark.parametrize("shape", [(2, 1), (8, 8), (16, 4000), (1, 3), (3, 2, 5)])
def test_layouts_that_may_be_channels_by_samples_are_accepted(shape):
    audio.check_signal(torch.zeros(shape))


SIZED_TRANSFORMS = {
    "stft": lambda **kw: audio.stft(torch.zeros(4000), **kw),
    "istft": lambda **kw: audio.istft(audio.stft(torch.zeros(4000), 512, 128), **kw),
    "melspectrogram": lambda **kw: audio.melspectrogram(torch.zeros(4000), SR, **kw),
    "griffin_lim": lambda **kw: audio.griffin_lim(audio.stft(torch.zeros(4000), 512, 128).abs(), n_iter=1, **kw),
}
sized_transforms = pytest.mark.parametrize("transform", SIZED_TRANSFORMS.values(), ids=SIZED_TRANSFORMS.keys())
inverse_transforms = pytest.mark.parametrize(
    "transform", [SIZED_TRANSFORMS["istft"], SIZED_TRANSFORMS["griffin_lim"]], ids=["istft", "griffin_lim"]
)


@sized_transforms
@pytest.mark.parametrize("hop_length", [0, -1, 2.5, 128.0])
def test_invalid_hop_length_is_rejected_naming_it_and_the_default(transform, hop_length):
    expected = f"hop_length={hop_length!r} must be an int >= 1 (samples between frames): pass e.g. 128"
    with pytest.raises(ValueError, match=re.escape(expected)):
        transform(n_fft=512, hop_length=hop_length)


@sized_transforms
@pytest.mark.parametrize("n_fft", [0, -4, 512.0])
def test_invalid_n_fft_is_rejected_naming_it(transform, n_fft):
    with pytest.raises(ValueError, match=re.escape(f"n_fft={n_fft!r} must be an int >= 1 (window length in samples)")):
        transform(n_fft=n_fft, hop_length=128)


@pytest.mark.parametrize(
    "function",
    [
        lambda: audio.stft(torch.zeros(100), 2),
        lambda: audio.multi_resolution_spectral_distance(torch.zeros(100), torch.zeros(100), (64, 2)),
    ],
    ids=["stft", "multi_resolution_spectral_distance"],
)
def test_n_fft_too_small_for_the_default_hop_says_so(function):
    with pytest.raises(ValueError, match=re.escape("n_fft=2 is too small for the default hop_length (n_fft // 4 = 0)")):
        function()


@pytest.mark.parametrize("n_mels", [0, -3, 40.0])
def test_melspectrogram_rejects_an_invalid_n_mels(n_mels):
    with pytest.raises(ValueError, match=re.escape(f"n_mels={n_mels!r} must be an int >= 1 (mel bands): pass e.g. 64")):
        audio.melspectrogram(torch.zeros(4000), SR, 512, n_mels=n_mels)


@inverse_transforms
@pytest.mark.parametrize("length", [0, -5, 10.5])
def test_invalid_output_length_is_rejected_naming_it(transform, length):
    with pytest.raises(ValueError, match=re.escape(f"length={length!r} must be an int >= 1 (output samples)")):
        transform(n_fft=512, hop_length=128, length=length)


@inverse_transforms
def test_spectrogram_of_another_n_fft_names_the_n_fft_it_came_from(transform):
    expected = "has 257 frequency bins, which is n_fft=512, but n_fft=1024 was given (513 bins): pass n_fft=512"
    with pytest.raises(ValueError, match=re.escape(expected)):
        transform(n_fft=1024)


def test_griffin_lim_rejects_a_complex_spectrogram_and_negative_magnitudes():
    spec = audio.stft(torch.rand(4000) - 0.5, 512, 128)
    with pytest.raises(ValueError, match=re.escape("mag is complex: griffin_lim takes magnitudes, spec.abs()")):
        audio.griffin_lim(spec, 512, 128)
    with pytest.raises(ValueError, match=r"mag has negative values: griffin_lim expects magnitudes \(use \.abs\(\)\)"):
        audio.griffin_lim(spec.real, 512, 128)


@pytest.mark.parametrize("quantize", [True, False])
def test_mu_law_encode_refuses_to_clip_and_names_the_peak_and_the_fix(quantize):
    x = torch.tensor([0.0, 0.5, -1.25, 1.1])
    expected = (
        "x peaks at 1.250 > 1.0: mu_law_encode expects [-1, 1] and would clip it. "
        "Call coursekit.audio.peak_normalize(x) first."
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        audio.mu_law_encode(x, quantize=quantize)


def test_mu_law_encode_accepts_float_rounding_above_one():
    x = torch.tensor([1.0 + 1e-7, -1.0 - 1e-7, 0.0])
    assert audio.mu_law_encode(x).tolist() == [255, 0, 128]


@pytest.mark.parametrize("function", [audio.mu_law_encode, audio.mu_law_decode], ids=["encode", "decode"])
@pytest.mark.parametrize("mu", [0, -1, 255.5])
def test_mu_law_rejects_an_invalid_mu(function, mu):
    with pytest.raises(ValueError, match=re.escape(f"mu={mu!r} must be an int >= 1")):
        function(torch.zeros(10), mu=mu)


def test_mu_law_decode_rejects_classes_outside_zero_to_mu():
    expected = "y holds classes from 0 to 255, outside [0, mu] = [0, 15]: decode with the mu used to encode"
    with pytest.raises(ValueError, match=re.escape(expected)):
        audio.mu_law_decode(torch.tensor([0, 128, 255]), mu=15)


@pytest.mark.parametrize("peak", [0.0, -1.0, math.nan, math.inf])
def test_peak_normalize_rejects_a_peak_that_is_not_positive(peak):
    with pytest.raises(ValueError, match=re.escape(f"peak={peak}: the target peak must be a positive finite number")):
        audio.peak_normalize(torch.tensor([0.1, -0.2]), peak)


@pytest.mark.parametrize("ref", [0.0, -1.0])
def test_amplitude_to_db_rejects_a_reference_that_is_not_positive(ref):
    with pytest.raises(ValueError, match=re.escape(f"ref={ref}: the 0 dB reference must be a positive magnitude")):
        audio.amplitude_to_db(torch.tensor([0.5, 1.0]), ref=ref)


@pytest.mark.parametrize(("floor_db", "suggestion"), [(80.0, -80.0), (0.0, -70.0)])
def test_amplitude_to_db_rejects_a_floor_at_or_above_the_loudest_bin(floor_db, suggestion):
    expected = f"floor_db={floor_db}: with ref=None the loudest bin reads 0 dB, so a floor at or above 0 dB"
    with pytest.raises(ValueError, match=re.escape(expected) + rf".*did you mean floor_db={suggestion}"):
        audio.amplitude_to_db(torch.tensor([0.5, 1.0]), floor_db=floor_db)


def test_amplitude_to_db_keeps_a_positive_floor_with_an_explicit_reference():
    db = audio.amplitude_to_db(torch.tensor([0.1, 1.0]), floor_db=10.0, ref=0.01)
    torch.testing.assert_close(db, torch.tensor([20.0, 40.0]))


@pytest.mark.parametrize("eps", [0.0, -1e-3])
def test_spectral_distance_rejects_an_eps_that_is_not_positive(eps):
    with pytest.raises(ValueError, match=re.escape(f"eps={eps}: the magnitude treated as silence must be positive")):
        audio.spectral_distance(torch.zeros(1000), torch.zeros(1000), 256, eps=eps)
