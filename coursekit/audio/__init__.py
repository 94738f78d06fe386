"""Audio in, audio out, and the representations between: waveform, STFT, mel, mu-law, dB.

Conventions: a signal ``x`` is a float32 ``torch.Tensor`` shaped ``[samples]``,
``[channels, samples]`` or ``[batch, channels, samples]`` with values in [-1, 1];
``sr`` is its sample rate in Hz. Files are read and written with soundfile (librosa is the
fallback for formats soundfile cannot read). Transforms come from torch, torchaudio and
librosa; the few written here for teaching are checked against them in ``tests/test_audio.py``.

One module per job, every name importable from here (``coursekit.audio.stft``):
:mod:`~coursekit.audio.validate` (argument checks), :mod:`~coursekit.audio.files` (load, save,
play), :mod:`~coursekit.audio.ops` (resampling, levels, lengths, mu-law, dB) and
:mod:`~coursekit.audio.spectral` (STFT, mel, Griffin-Lim, spectral distances).

Lesson: lessons/01_audio_representations.ipynb
"""

from coursekit.audio.files import AUDIO_SUFFIXES, declared_frames, describe_truncation, load, play, save
from coursekit.audio.ops import (
    MU_LAW_TOLERANCE,
    amplitude_to_db,
    db_to_amplitude,
    mu_law_compress,
    mu_law_decode,
    mu_law_encode,
    mu_law_expand,
    peak_normalize,
    random_crop,
    resample,
    rms_db,
    rms_normalize,
    to_mono,
    trim_or_pad,
)
from coursekit.audio.spectral import (
    griffin_lim,
    hz_to_mel,
    istft,
    magphase,
    mel_to_hz,
    melspectrogram,
    multi_resolution_spectral_convergence,
    multi_resolution_spectral_distance,
    spectral_distance,
    stft,
)
from coursekit.audio.validate import MAX_CHANNELS, check_signal, check_sr

__all__ = [
    "AUDIO_SUFFIXES", "MAX_CHANNELS", "MU_LAW_TOLERANCE", "amplitude_to_db", "check_signal", "check_sr",
    "db_to_amplitude", "declared_frames", "describe_truncation", "griffin_lim", "hz_to_mel", "istft", "load",
    "magphase", "mel_to_hz", "melspectrogram", "mu_law_compress", "mu_law_decode", "mu_law_encode",
    "mu_law_expand", "multi_resolution_spectral_convergence", "multi_resolution_spectral_distance", "peak_normalize",
    "play", "random_crop", "resample",
    "rms_db", "rms_normalize", "save", "spectral_distance", "stft", "to_mono", "trim_or_pad",
]
