"""Random fixed-length crops of a set of clips, so that a model trains on many windows of few recordings.

Lesson 05 trains its waveform VAE on one-second windows cut at random from NSynth-mini notes and
techno loops; an "epoch" is simply ``len(dataset)`` such windows.

Example:
    >>> crops = RandomCrops(clips, 16000, n_items=1600, seed=0)   # clips: Tensor [n, 1, samples]
    >>> crops[3]["audio"].shape                                   # torch.Size([1, 16000])

Lesson: lessons/05_waveform_vae.ipynb
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class RandomCrops(Dataset):
    """``n_items`` windows of ``crop`` samples, each from a random clip at a random start.

    Item ``i`` is ``{"audio": Tensor [1, crop], "clip": int}``. Each epoch draws new windows (the
    ``epoch`` counter advances when the last item is read), yet the whole sequence is fixed by
    ``seed``, so two runs with one seed see the same windows.

    Lesson: lessons/05_waveform_vae.ipynb
    """

    def __init__(self, clips: torch.Tensor, crop: int, n_items: int, seed: int = 0) -> None:
        if not isinstance(clips, torch.Tensor) or clips.dim() != 3 or clips.shape[1] != 1:
            shape = list(clips.shape) if isinstance(clips, torch.Tensor) else type(clips).__name__
            raise ValueError(f"clips has shape {shape}; expected Tensor [n_clips, 1, samples] (stack the clips).")
        if isinstance(crop, bool) or not isinstance(crop, int) or not 0 < crop <= clips.shape[-1]:
            raise ValueError(f"crop={crop!r}: give a whole number of samples from 1 to the clips' {clips.shape[-1]}.")
        if isinstance(n_items, bool) or not isinstance(n_items, int) or n_items < 1:
            raise ValueError(f"n_items={n_items!r}: give how many windows make an epoch, e.g. 1600.")
        self.clips, self.crop, self.n_items, self.seed = clips, crop, n_items, seed
        self.epoch = 0
        self._draw()

    def _draw(self) -> None:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.which = torch.randint(len(self.clips), (self.n_items,), generator=generator)
        self.starts = torch.randint(self.clips.shape[-1] - self.crop + 1, (self.n_items,), generator=generator)

    def __len__(self) -> int:
        return self.n_items

    def __getitem__(self, index: int) -> dict:
        clip, start = int(self.which[index]), int(self.starts[index])
        item = {"audio": self.clips[clip, :, start : start + self.crop], "clip": clip}
        if index == self.n_items - 1:
            self.epoch += 1
            self._draw()
        return item
