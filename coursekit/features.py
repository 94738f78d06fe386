"""Spectrogram features: how a mono note becomes a ``[1, n_freq, n_frames]`` image in [0, 1], and back.

Source 003's representation, used by lesson 04's two-stage VAE: 2 s of audio at 16 kHz, STFT
magnitudes (``n_fft = 512``, hop 256), scaled so no [-1, 1] signal can exceed 1, a -70 dB floor,
mu-law compression with ``mu = 8``, padded to 128 frames; Griffin-Lim goes back to audio.
A signal-layer module: it knows no model and no dataset.

Example::

    features = SpectrogramFeatures()
    image = features.encode(note)            # [1, samples] -> [1, 256, 128]
    back = features.decode(image[None])      # [1, 1, 32000], by Griffin-Lim

Lesson: lessons/04_spectrogram_vae.ipynb
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from coursekit import audio
from coursekit.config import config_from_dict

SCALES = ("mu_law", "db")  # how magnitudes are squeezed into [0, 1]
FORMAT = 1  # bump when SpectrogramFeatures.encode changes, so cached features are recomputed


@dataclass(frozen=True)
class SpectrogramFeatures:
    """How a mono note becomes a ``[1, n_freq, n_frames]`` image in [0, 1], and back (source 003).

    :meth:`encode`, step by step:

    1. trim or pad to ``duration`` seconds (``n_samples = 32000``), then peak-normalise to 1;
    2. STFT magnitude (Hann window ``n_fft = 512``, hop 256: bins of 31.25 Hz, frames of 16 ms,
       ``1 + 32000 // 256 = 126`` frames), dropping the Nyquist bin: 257 -> 256 bins;
    3. divide by :attr:`reference`, the largest magnitude any signal in [-1, 1] can reach
       (``sum(window) = n_fft / 2 = 256``): values lie in [0, 1] and never clip. A full-scale
       sine reads 0.5 (-6 dB), a typical NSynth-mini note peaks near 0.25 (-12 dB);
    4. set bins below ``floor_db`` (-70 dB relative to that reference) to exactly 0;
    5. mu-law compress, ``ln(1 + mu m) / ln(1 + mu)`` with ``mu = 8``: a -40 dB partial
       (``m = 0.01``) rises to 0.035, a full-scale sine to 0.73; or, with ``scale="db"``, map
       decibels linearly, ``(20 log10 m - floor_db) / -floor_db``: the floor to 0, a -40 dB
       partial to 0.43, 0 dB to 1 (lesson 04 compares the two);
    6. pad the frames with silence (zeros) to ``n_frames = 128``, a size four stride-2 layers halve.

    The reference is fixed, not each note's own peak, so the map is invertible: :meth:`decode`
    undoes steps 6 to 2 exactly for every bin above the floor (the phase is estimated by
    Griffin-Lim) and returns a waveform at the level of the peak-normalised input.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    sr: int = 16000  # Hz
    duration: float = 2.0  # seconds of each note kept (NSynth notes: 4 s, held for 3)
    n_fft: int = 512  # STFT window and FFT length, samples
    hop_length: int = 256  # samples between frames
    floor_db: float = -70.0  # dB relative to `reference`; quieter bins become 0
    mu: float = 8.0  # mu-law companding of the scaled magnitudes (scale "mu_law")
    scale: str = "mu_law"  # "mu_law" (source 003) or "db": decibels above the floor, linear in [0, 1]
    n_freq: int = 256  # frequency bins kept: n_fft // 2 (the Nyquist bin is dropped)
    n_frames: int = 128  # frames after padding; at least 1 + n_samples // hop_length

    def __post_init__(self) -> None:
        audio.check_sr(self.sr)
        for name in ("n_fft", "hop_length", "n_freq", "n_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if not self.duration > 0 or not self.mu > 0 or not self.floor_db < 0:
            raise ValueError(
                f"duration={self.duration}, mu={self.mu} must be positive and floor_db={self.floor_db} negative "
                "(e.g. 2.0 s, mu 8, -70 dB)."
            )
        if self.scale not in SCALES:
            raise ValueError(f"scale={self.scale!r} is not one of {SCALES}: use 'mu_law' (source 003) or 'db'.")
        if self.n_freq != self.n_fft // 2:
            raise ValueError(f"n_freq={self.n_freq} must be n_fft // 2 = {self.n_fft // 2} (only Nyquist is dropped).")
        if self.n_frames < self.n_stft_frames:
            raise ValueError(
                f"n_frames={self.n_frames} is fewer than the {self.n_stft_frames} STFT frames of "
                f"{self.duration} s: use n_frames >= {self.n_stft_frames} or a shorter duration."
            )
        if self.n_fft > self.n_samples:
            raise ValueError(f"n_fft={self.n_fft} is longer than the {self.n_samples} samples of a note.")

    @property
    def n_samples(self) -> int:
        """Samples per note: ``round(duration * sr)`` (32000)."""
        return round(self.duration * self.sr)

    @property
    def n_stft_frames(self) -> int:
        """STFT frames of a note before padding: ``1 + n_samples // hop_length`` (126)."""
        return 1 + self.n_samples // self.hop_length

    @property
    def reference(self) -> float:
        """The magnitude that scales to 1: ``sum(hann window) = n_fft / 2``, the most any [-1, 1] signal reaches."""
        return self.n_fft / 2

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one note's features: ``(1, n_freq, n_frames)``."""
        return (1, self.n_freq, self.n_frames)

    @property
    def floor(self) -> float:
        """The floor as a scaled magnitude: ``10 ** (floor_db / 20)`` (3.2e-4 for -70 dB)."""
        return 10 ** (self.floor_db / 20)

    def to_dict(self) -> dict:
        """A JSON-ready dict, for checkpoints and cache keys."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SpectrogramFeatures:
        """The settings :meth:`to_dict` wrote; raises ValueError naming unknown keys."""
        return config_from_dict(cls, values)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features of mono notes, values in [0, 1] (see the class docstring for the steps).

        Args:
            x: Tensor ``[samples]``, ``[1, samples]`` or ``[batch, 1, samples]`` in [-1, 1] at ``sr`` Hz,
                any length (trimmed or zero-padded to ``n_samples``).

        Returns:
            Tensor ``[1, n_freq, n_frames]`` (for one note) or ``[batch, 1, n_freq, n_frames]``.

        Raises:
            ValueError: wrong rank, more than one channel, NaN or inf samples.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        audio.check_signal(x, "x")
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if x.shape[-2] != 1:
            raise ValueError(
                f"x has shape {list(x.shape)} with {x.shape[-2]} channels; the features are mono: "
                "mix down with coursekit.audio.to_mono(x) (or pass a batch as [batch, 1, samples])."
            )
        x = audio.peak_normalize(audio.trim_or_pad(x, self.n_samples))
        mag = audio.stft(x, self.n_fft, self.hop_length).abs()[..., : self.n_freq, :] / self.reference
        mag = torch.where(mag >= self.floor, mag.clamp(max=1.0), torch.zeros_like(mag))
        if self.scale == "db":
            features = (20 * torch.log10(mag.clamp(min=self.floor)) - self.floor_db) / -self.floor_db
        else:
            features = audio.mu_law_compress(mag, self.mu)
        return F.pad(features, (0, self.n_frames - features.shape[-1]))

    def to_magnitude(self, features: torch.Tensor) -> torch.Tensor:
        """Undo the scaling: STFT magnitudes ``[..., 1, n_fft // 2 + 1, n_stft_frames]`` for :func:`audio.griffin_lim`.

        Expands the mu-law, sets bins below the floor to 0 (a model's near-zero outputs become
        silence, not hiss), multiplies by :attr:`reference`, restores the Nyquist bin as zeros and
        crops the padding frames.

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        check_features(features, self.shape)
        features = features[..., : self.n_stft_frames]
        if self.scale == "db":  # below 1 dB above the floor is silence, so a model's near-zero output is no hiss
            mag = torch.where(features * -self.floor_db >= 1.0, 10 ** ((features - 1) * -self.floor_db / 20), 0.0)
        else:
            mag = audio.mu_law_expand(features, self.mu)
        mag = torch.where(mag >= self.floor, mag, torch.zeros_like(mag)) * self.reference
        return F.pad(mag, (0, 0, 0, 1))

    def decode(self, features: torch.Tensor, n_iter: int = 32, seed: int | None = 0) -> torch.Tensor:
        """Audio from features: :meth:`to_magnitude`, then Griffin-Lim for the phase.

        Args:
            features: Tensor ``[1, n_freq, n_frames]`` or ``[batch, 1, n_freq, n_frames]`` in [0, 1].
            n_iter: Griffin-Lim iterations (32 take about 0.03 s per note on one CPU thread).
            seed: seeds Griffin-Lim's random starting phase, so decoding is repeatable; None: global RNG.

        Returns:
            Tensor ``[1, n_samples]`` or ``[batch, 1, n_samples]`` at ``sr`` Hz, at the level of the
            peak-normalised input (it may peak a little above 1: normalise before saving).

        Lesson: lessons/04_spectrogram_vae.ipynb
        """
        mag = self.to_magnitude(features.detach())
        return audio.griffin_lim(mag, self.n_fft, self.hop_length, n_iter=n_iter, length=self.n_samples, seed=seed)


def check_features(features: torch.Tensor, shape: tuple[int, int, int], name: str = "features") -> None:
    """Raise a clear error unless ``features`` is a finite float Tensor ``[(batch,) *shape]`` in [0, 1].

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        got = features.dtype if isinstance(features, torch.Tensor) else type(features).__name__
        raise TypeError(f"{name} must be a float torch.Tensor {list(shape)}, got {got}.")
    if features.dim() not in (3, 4) or tuple(features.shape[-3:]) != tuple(shape):
        raise ValueError(
            f"{name} has shape {list(features.shape)}; expected {list(shape)} or "
            f"[batch, {', '.join(map(str, shape))}]: make features with SpectrogramFeatures().encode(audio)."
        )
    if not torch.isfinite(features).all():
        raise ValueError(f"{name} contains NaN or inf: check the model or step that produced it.")
    low, high = float(features.min()), float(features.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name} has values in [{low:.3g}, {high:.3g}]; features lie in [0, 1]: use .clamp(0, 1).")
