"""Fixed-length windows cut at random from longer recordings, the way raw-audio VAEs are fed.

A VAE takes inputs of one size, but recordings are minutes long and all different. Each item of
:class:`RandomWindows` is a window of ``n_samples`` cut from one recording at a random start,
and the start changes every epoch (:meth:`RandomWindows.set_epoch`), so the model sees new cuts
of the same music instead of memorising fixed ones.

Lesson: lessons/03_raw_audio_pitfalls.ipynb
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from coursekit import audio


class RandomWindows(Dataset):
    """Random windows of ``n_samples`` from the recordings of ``source``, resampled to ``sr``.

    The recordings are loaded and resampled once, when the dataset is built, and kept in memory
    (40 rendered pieces at 3,000 Hz are about 16 MB).

    Args:
        source: a dataset whose items are dicts with ``"audio"`` (Tensor ``[1, samples]``, mono)
            and ``"sr"`` (int Hz), e.g. :class:`coursekit.data.MusicRecordings`.
        n_samples: window length in samples (at ``sr``), e.g. 3000 for one second at 3 kHz.
        windows_per_item: windows cut from each recording per epoch; ``len`` is
            ``len(source) * windows_per_item``.
        sr: sample rate of the windows in Hz; None keeps each recording's own rate (they must agree).
        seed: with the epoch and the item index, fixes where each window starts.
        min_rms_db: when set, a window quieter than this (dB RMS, e.g. -50) is redrawn up to 10
            times, so that pauses and the silence after the last note are rarely chosen.

    Items are dicts: ``"audio"`` float32 Tensor ``[1, n_samples]``; ``"sr"`` int Hz;
    ``"source_index"`` int, the recording it came from; ``"start"`` int, its first sample.

    Raises:
        ValueError: a bad argument, a stereo recording, or a recording shorter than ``n_samples``.

    Example:
        >>> windows = RandomWindows(MusicRecordings(), n_samples=3000, windows_per_item=50, sr=3000)
        >>> loader = DataLoader(windows, batch_size=64, shuffle=True)   # batch["audio"]: [64, 1, 3000]

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """

    def __init__(
        self,
        source: Dataset,
        n_samples: int,
        windows_per_item: int = 1,
        sr: int | None = None,
        seed: int = 0,
        min_rms_db: float | None = None,
    ) -> None:
        for name, value in (("n_samples", n_samples), ("windows_per_item", windows_per_item)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: use a whole number of at least 1.")
        if len(source) == 0:
            raise ValueError("source holds no recordings: give RandomWindows a dataset with at least one item.")
        self.n_samples, self.windows_per_item, self.seed, self.epoch = n_samples, windows_per_item, seed, 0
        self.min_rms_db = min_rms_db
        self.recordings: list[torch.Tensor] = []
        rates = set()
        for index in range(len(source)):
            item = source[index]
            x, item_sr = item["audio"], int(item["sr"])
            audio.check_signal(x, name=f"source[{index}]['audio']", min_rank=2, max_rank=2)
            if x.shape[0] != 1:
                raise ValueError(
                    f"source[{index}]['audio'] has {x.shape[0]} channels: RandomWindows needs mono "
                    "recordings [1, samples]; mix them down with coursekit.audio.to_mono first."
                )
            if sr is not None:
                x = audio.resample(x, item_sr, sr)
            rates.add(sr if sr is not None else item_sr)
            if x.shape[-1] < n_samples:
                raise ValueError(
                    f"source[{index}] is {x.shape[-1]} samples long, shorter than n_samples={n_samples}: "
                    "use shorter windows or leave this recording out."
                )
            self.recordings.append(x.to(torch.float32))
        if len(rates) > 1:
            raise ValueError(f"the recordings have sample rates {sorted(rates)} Hz: pass sr=... to resample them all.")
        self.sr = rates.pop()

    def set_epoch(self, epoch: int) -> None:
        """Move every window to a new random start (deterministic for a given ``seed`` and ``epoch``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.recordings) * self.windows_per_item

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} windows.")
        source_index = index // self.windows_per_item
        x = self.recordings[source_index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        for _ in range(10 if self.min_rms_db is not None else 1):
            start = int(rng.integers(0, x.shape[-1] - self.n_samples + 1))
            window = x[:, start : start + self.n_samples]
            if self.min_rms_db is None or float(audio.rms_db(window)) >= self.min_rms_db:
                break
        return {"audio": window.clone(), "sr": self.sr, "source_index": source_index, "start": start}
