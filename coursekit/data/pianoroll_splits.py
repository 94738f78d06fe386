"""Piano-roll windows split by piece into train, valid and test, and their loaders (lesson 07).

Windows of one piece overlap, so a split by window would put near-copies of the same music in
training and test: every window goes where its piece goes. Training windows are transposed by up
to ``ROLL_TRANSPOSE`` semitones, a new shift each epoch (:class:`EpochLoader`).

Lesson: lessons/07_pianoroll_gru_vae.ipynb
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from coursekit.data.pianoroll import PianoRolls

ROLL_SEED = 0
ROLL_SPLIT = (0.8, 0.1, 0.1)  # fractions of each style's PIECES in train, valid, test
ROLL_WINDOW, ROLL_HOP, ROLL_TRANSPOSE = 64, 16, 3
ROLL_BATCH = 64


def pianoroll_splits(
    max_pieces: int | None = None,
    transpose: int = ROLL_TRANSPOSE,
    seed: int = ROLL_SEED,
    root: str | Path | None = None,
) -> dict[str, Subset]:
    """Train, valid and test windows of both styles, split by PIECE so no piece is in two splits.

    Within each style the pieces are shuffled by ``seed`` and cut by ``ROLL_SPLIT``; every window
    of a piece goes where its piece goes (windows overlap, so a split by window would leak).

    Args:
        max_pieces: pieces per style (None: all, 331 chorales and 1,059 folk tunes).
        transpose: the train windows are transposed by up to this many semitones (call
            ``set_epoch`` on ``splits["train"].dataset`` for new shifts); valid and test never are.
        seed: chooses the split and the transpositions.
        root: the piano-roll cache folder (default ``config.data_dir() / "pianorolls"``).

    Returns:
        ``{"train", "valid", "test"}``: ``Subset``s of :class:`~coursekit.data.pianoroll.PianoRolls`
        windows (``ROLL_WINDOW`` steps every ``ROLL_HOP``).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    common = {"window": ROLL_WINDOW, "hop": ROLL_HOP, "root": root, "max_pieces": max_pieces, "seed": seed}
    shifted = PianoRolls(transpose=transpose, **common)
    plain = PianoRolls(transpose=0, **common)
    split_of = _piece_splits(plain.pieces, seed)
    indices: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for index, (number, _) in enumerate(plain.windows):
        indices[split_of[number]].append(index)
    return {name: Subset(shifted if name == "train" else plain, idx) for name, idx in indices.items()}


def _piece_splits(pieces: list[dict], seed: int) -> list[str]:
    """The split ("train", "valid" or "test") of each piece, by ``ROLL_SPLIT`` within each style."""
    split_of = [""] * len(pieces)
    generator = torch.Generator().manual_seed(seed)
    for style in dict.fromkeys(p["style"] for p in pieces):
        numbers = [i for i, p in enumerate(pieces) if p["style"] == style]
        if len(numbers) < 3:
            raise ValueError(
                f"only {len(numbers)} {style} piece(s): train, valid and test need at least 3 (use max_pieces >= 3)."
            )
        order = [numbers[i] for i in torch.randperm(len(numbers), generator=generator).tolist()]
        n_valid = max(1, round(ROLL_SPLIT[1] * len(order)))
        n_test = max(1, round(ROLL_SPLIT[2] * len(order)))
        for rank, number in enumerate(order):
            split_of[number] = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"
    return split_of


class EpochLoader:
    """A DataLoader over (a Subset of) :class:`PianoRolls` that calls ``set_epoch`` before each pass.

    :func:`coursekit.train.fit` iterates its loader once per epoch; this makes each epoch draw new
    transpositions. Epochs count from 0.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """

    def __init__(self, loader: DataLoader) -> None:
        self.loader, self.epoch = loader, 0
        rolls = loader.dataset.dataset if isinstance(loader.dataset, Subset) else loader.dataset
        if not hasattr(rolls, "set_epoch"):
            raise TypeError(f"EpochLoader needs a loader over PianoRolls (or a Subset of one), got {type(rolls)}.")
        self.rolls = rolls

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.rolls.set_epoch(self.epoch)
        self.epoch += 1
        return iter(self.loader)


def pianoroll_loaders(splits: dict[str, Subset], batch_size: int = ROLL_BATCH, seed: int = ROLL_SEED) -> dict:
    """Loaders of :func:`pianoroll_splits`: shuffled train (new transpositions each epoch), plain valid and test.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    shuffle = torch.Generator().manual_seed(seed)
    train = DataLoader(splits["train"], batch_size=batch_size, shuffle=True, generator=shuffle)
    return {
        "train": EpochLoader(train),
        "valid": DataLoader(splits["valid"], batch_size=256),
        "test": DataLoader(splits["test"], batch_size=256),
    }
