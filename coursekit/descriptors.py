"""Acoustic descriptors frame by frame, aligned with the latent frames of lesson 05's waveform VAE.

What a latent channel "means" is measured by correlating it, frame by frame, with quantities a
listener can name. Four, all from librosa with one frame per ``hop`` samples (128: one per latent
frame), each frame centred on its hop (frame ``j`` covers samples ``[hop * j, hop * (j + 1))``
and its ``n_fft`` window is centred there):

- ``loudness``: RMS level in dB (re full scale), floored at -100 dB;
- ``centroid``: spectral centroid in Hz, the "brightness" of the frame;
- ``flatness``: spectral flatness in [0, 1], near 1 for noise (hats) and near 0 for tones (bass);
- ``onset``: onset strength (positive spectral flux of the mel spectrogram), high where something starts.

Example:
    >>> d = frame_descriptors(loop, 16000)       # loop: Tensor [1, samples], samples divisible by 128
    >>> d["centroid"].shape                      # (samples // 128,)

Lesson: lessons/05_waveform_vae.ipynb
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

DESCRIPTORS = ("loudness", "centroid", "flatness", "onset")


def frame_descriptors(x: torch.Tensor, sr: int, hop: int = 128, n_fft: int = 512) -> dict[str, np.ndarray]:
    """The four descriptors of a mono signal, one value per ``hop`` samples.

    Args:
        x: Tensor ``[samples]`` or ``[1, samples]`` with ``samples`` a multiple of ``hop``.
        sr: sample rate in Hz.

    Returns:
        ``{name: float64 array [samples // hop]}`` for each name in ``DESCRIPTORS``.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    if not isinstance(x, torch.Tensor) or x.dim() not in (1, 2) or (x.dim() == 2 and x.shape[0] != 1):
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x has shape {shape}; expected one mono signal [samples] or [1, samples].")
    if x.shape[-1] % hop or x.shape[-1] < n_fft:
        raise ValueError(
            f"x has {x.shape[-1]} samples: give a multiple of hop={hop}, at least n_fft={n_fft} "
            "(coursekit.audio.trim_or_pad)."
        )
    y = x.detach().reshape(-1).double().numpy()
    frames = len(y) // hop
    shifted = np.pad(y, (0, hop // 2))[hop // 2 :]  # librosa centres frame j at hop * j: move it to the hop's middle
    power = np.abs(librosa.stft(shifted, n_fft=n_fft, hop_length=hop)) ** 2
    rms = librosa.feature.rms(y=shifted, frame_length=n_fft, hop_length=hop)[0]  # from samples: no window loss
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=64)
    values = {
        "loudness": 20 * np.log10(np.maximum(rms, 1e-5)),
        "centroid": librosa.feature.spectral_centroid(S=np.sqrt(power), sr=sr)[0],
        "flatness": librosa.feature.spectral_flatness(S=np.sqrt(power))[0],
        "onset": librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=sr),
    }
    return {name: np.asarray(values[name][:frames], dtype=np.float64) for name in DESCRIPTORS}


def latent_correlations(mu: torch.Tensor, descriptors: dict[str, np.ndarray]) -> np.ndarray:
    """Pearson correlation of every latent channel with every descriptor over frames.

    Args:
        mu: Tensor ``[channels, frames]``, the posterior means of one or more clips laid end to end.
        descriptors: ``{name: array [frames]}`` as :func:`frame_descriptors` gives (concatenated alike).

    Returns:
        float64 array ``[channels, len(descriptors)]`` in [-1, 1] (0 where a channel or descriptor is constant).

    Lesson: lessons/05_waveform_vae.ipynb
    """
    z = mu.detach().double().numpy()
    table = np.stack([np.asarray(v, dtype=np.float64) for v in descriptors.values()])
    if z.ndim != 2 or table.shape[1] != z.shape[1]:
        raise ValueError(
            f"mu has shape {list(mu.shape)} and the descriptors {table.shape[1]} frames: give mu as [channels, "
            "frames] with one descriptor value per frame."
        )

    def standardised(a: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(a, axis=1, keepdims=True)
        return np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)

    return standardised(z) @ standardised(table).T


def beat_strength(x: torch.Tensor, sr: int, bpm_range: tuple[float, float] = (120.0, 135.0), hop: int = 128) -> float:
    """How strongly a clip's onsets repeat once a beat: the largest autocorrelation of its onset strength
    (:func:`frame_descriptors`) at a lag of one beat, searched over the tempos in ``bpm_range``.

    Near 1 for a steady beat, near 0 for onsets with no period in that range (or none at all).

    Lesson: lessons/05_waveform_vae.ipynb
    """
    onset = frame_descriptors(x, sr, hop)["onset"]
    onset = onset - onset.mean()
    frames_per_minute = sr / hop * 60
    lags = range(round(frames_per_minute / bpm_range[1]), round(frames_per_minute / bpm_range[0]) + 1)
    energy = float(np.dot(onset, onset))
    if energy == 0.0 or lags.stop > len(onset):
        return 0.0
    return max(float(np.dot(onset[lag:], onset[:-lag])) / energy for lag in lags)


def comb_share(x: torch.Tensor, sr: int, rate: float = 125.0, width_hz: float = 2.0) -> float:
    """Share of a clip's energy above 60 Hz within ``width_hz`` of a multiple of ``rate`` Hz.

    With ``rate`` the latent frame rate of lesson 05's model (125 Hz) it measures the buzz its decoder
    adds; a clip with no comb there scores a few per cent.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    y = x.detach().reshape(-1).double().numpy()
    power = np.abs(np.fft.rfft(y)) ** 2
    hz = np.fft.rfftfreq(len(y), 1 / sr)
    near = (np.abs(hz - rate * np.round(hz / rate)) <= width_hz) & (hz > 60)
    total = power.sum()
    return float(power[near].sum() / total) if total > 0 else 0.0


def loud_flatness(x: torch.Tensor, sr: int, within_db: float = 30.0) -> float:
    """Mean spectral flatness of the frames of ``x`` within ``within_db`` of its loudest frame.

    Flatness is 1 for white noise and near 0 for a pure tone; the quiet frames (a release, silence
    after a note) are left out, since their flatness describes the noise floor, not the sound.

    Args:
        x: Tensor ``[samples]`` or ``[1, samples]``, as :func:`frame_descriptors` takes it.

    Lesson: lessons/08_model_comparison.ipynb
    """
    d = frame_descriptors(x, sr)
    loud = d["loudness"] >= d["loudness"].max() - within_db
    return float(d["flatness"][loud].mean())
