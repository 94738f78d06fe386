"""Per-note tensors in memory (:class:`NoteTensors`): spectrogram features of NSynth notes, computed
once and cached, and codes pre-encoded by any encoder function (:func:`pre_encode`).

Lesson 04 trains its Conv2D autoencoder on :func:`nsynth_features` and its VAE core on
``pre_encode(ae.encode, features)``: encoding once and training on stored codes (source 003's
"pre-encoded data") replaces a pass through the convolutional encoder per step by a table lookup.

Lesson: lessons/04_spectrogram_vae.ipynb
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from coursekit import config
from coursekit.data.nsynth import NSynthMini
from coursekit.features import FORMAT as FEATURES_FORMAT
from coursekit.features import SpectrogramFeatures
from coursekit.files import atomic_write


class NoteTensors(Dataset):
    """Per-note tensors held in memory: items ``{name: tensors[name][i], ..., "note_str": str}``.

    ``tensors`` maps a name (``"features"``, ``"code"``, ``"family"``, ``"pitch"``) to a Tensor
    whose first dimension counts notes. A DataLoader batches them as usual (note_str as a list).

    Lesson: lessons/04_spectrogram_vae.ipynb
    """

    def __init__(self, tensors: dict[str, torch.Tensor], note_str: list[str]) -> None:
        lengths = {name: len(t) for name, t in tensors.items()}
        if any(n != len(note_str) for n in lengths.values()):
            raise ValueError(f"every tensor needs one row per note ({len(note_str)} notes), got {lengths}.")
        self.tensors, self.note_str = tensors, list(note_str)

    def __len__(self) -> int:
        return len(self.note_str)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {name: t[index] for name, t in self.tensors.items()} | {"note_str": self.note_str[index]}

    def select(self, indices: list[int] | slice) -> NoteTensors:
        """The notes at ``indices`` (a list or a slice) as a new :class:`NoteTensors`: ``data.select(slice(8))``."""
        rows = list(range(len(self)))[indices] if isinstance(indices, slice) else list(indices)
        index = torch.tensor(rows, dtype=torch.long)
        return NoteTensors({name: t[index] for name, t in self.tensors.items()}, [self.note_str[i] for i in rows])


_FEATURE_CACHE: dict[str, NoteTensors] = {}


def nsynth_features(
    split: str = "train",
    size: str | int = "mini",
    features: SpectrogramFeatures | None = None,
    seed: int = 0,
    root: str | Path | None = None,
    disk_cache: bool = False,
) -> NoteTensors:
    """Features of every NSynth-mini note of a split, computed once per process and kept in memory.

    Items: ``{"features": [1, n_freq, n_frames], "family": int (index into
    coursekit.data.nsynth.FAMILIES), "pitch": MIDI key, "note_str": str}``. The 1,140 train notes
    take about 3 s on one CPU thread (reading the wavs, then the STFTs) and 150 MB of memory.

    Args:
        split, size, seed, root: as :class:`coursekit.data.nsynth.NSynthMini` (size "tiny" for FAST mode).
        features: the settings; default :class:`SpectrogramFeatures`.
        disk_cache: also keep them in ``config.data_dir() / "spectrogram_features-<size>-seed<seed>-<split>.pt"``
            (about as fast as recomputing at this size, so off by default).

    Returns:
        A :class:`NoteTensors`, as :func:`notes_features` returns it.

    Example::

        train = nsynth_features("train")
        batch = next(iter(DataLoader(train, batch_size=16, shuffle=True)))   # batch["features"]: [16, 1, 256, 128]

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    notes = NSynthMini(split, size=size, seed=seed, root=root)
    cache_file = config.data_dir() / f"spectrogram_features-{size}-seed{seed}-{split}.pt" if disk_cache else None
    return notes_features(notes, features, cache_file=cache_file)


def notes_features(
    notes: Dataset,
    features: SpectrogramFeatures | None = None,
    cache_file: str | Path | None = None,
    batch_size: int = 64,
) -> NoteTensors:
    """Features of every note of an :class:`coursekit.data.nsynth.NSynth` dataset (the real NSynth too).

    Computed once per process: a second call with the same notes (same files, same sizes and
    modification times) and settings returns the same :class:`NoteTensors` from memory.

    Args:
        notes: an ``NSynth`` (or ``NSynthMini``) dataset at ``features.sr``.
        features: the settings; default :class:`SpectrogramFeatures`.
        cache_file: also keep the result in this ``.pt`` file, written atomically and reused while
            its recorded key (files and settings) still matches; None keeps them in memory only.
        batch_size: notes per STFT call while computing.

    Returns:
        A :class:`NoteTensors` with ``"features" [n, 1, n_freq, n_frames]``, ``"family" [n]``,
        ``"pitch" [n]`` and ``note_str``; its tensors are shared with later calls, so do not edit
        them in place.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    features = SpectrogramFeatures() if features is None else features
    if getattr(notes, "sr", features.sr) != features.sr:
        raise ValueError(
            f"the notes are at {notes.sr} Hz but the features expect {features.sr} Hz: "
            f"load them with sr={features.sr}, or use SpectrogramFeatures(sr={notes.sr})."
        )
    key = _cache_key(notes, features)
    if key in _FEATURE_CACHE:
        return _FEATURE_CACHE[key]
    dataset = _read_feature_cache(Path(cache_file), key) if cache_file is not None else None
    if dataset is None:
        dataset = _compute_features(notes, features, batch_size)
        if cache_file is not None:
            _write_feature_cache(Path(cache_file), key, dataset)
    _FEATURE_CACHE[key] = dataset
    return dataset


def _cache_key(notes, features: SpectrogramFeatures) -> str:
    """A digest of what the features depend on: each note's wav (path, size, mtime) and the settings."""
    digest = hashlib.sha256(json.dumps([features.to_dict(), FEATURES_FORMAT]).encode())
    audio_dir = notes.folder / "audio"
    for example in notes.examples:
        path = audio_dir / f"{example['note_str']}.wav"
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{example['instrument_family']}|"
                      f"{example['pitch']}\n".encode())  # fmt: skip
    return digest.hexdigest()


def _compute_features(notes, features: SpectrogramFeatures, batch_size: int) -> NoteTensors:
    loader = DataLoader(notes, batch_size=batch_size, collate_fn=_collate_notes)
    parts: dict[str, list] = {"features": [], "family": [], "pitch": [], "note_str": []}
    for batch in loader:
        parts["features"].append(features.encode(batch["audio"]))
        parts["family"].append(batch["family"])
        parts["pitch"].append(batch["pitch"])
        parts["note_str"] += batch["note_str"]
    tensors = {name: torch.cat(parts[name]) for name in ("features", "family", "pitch")}
    return NoteTensors(tensors, parts["note_str"])


def _collate_notes(items: list[dict]) -> dict[str, Any]:
    return {
        "audio": torch.stack([item["audio"] for item in items]),
        "family": torch.tensor([item["instrument_family"] for item in items]),
        "pitch": torch.tensor([item["pitch"] for item in items]),
        "note_str": [item["note_str"] for item in items],
    }


def _read_feature_cache(path: Path, key: str) -> NoteTensors | None:
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, weights_only=True)
    except Exception as err:  # a truncated or foreign file: recompute and overwrite it
        warnings.warn(f"ignoring the unreadable feature cache {path} ({err}); recomputing it.", stacklevel=3)
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    return NoteTensors(stored["tensors"], stored["note_str"])


def _write_feature_cache(path: Path, key: str, dataset: NoteTensors) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"key": key, "tensors": dataset.tensors, "note_str": dataset.note_str}
    atomic_write(path, lambda file: torch.save(payload, file))


@torch.no_grad()
def pre_encode(
    encode: Callable[[torch.Tensor], torch.Tensor], dataset: NoteTensors, batch_size: int = 128
) -> NoteTensors:
    """Codes of every note by an encoder function: the training data of a second-stage model.

    Encoding once and training the second stage on the stored codes ("pre-encoded data", source
    003) replaces a pass through the convolutional encoder per step by a table lookup.

    Args:
        encode: maps features ``[batch, 1, n_freq, n_frames]`` to codes ``[batch, code_dim]``, e.g.
            ``ae.encode`` of a trained :class:`~coursekit.models.spectrogram.SpectrogramAE` in eval
            mode (put it in eval mode first: batch norm must use its running statistics). Its
            inputs are moved to the device of ``encode.__self__`` when it is a bound method of a
            module, and its outputs are brought back to the CPU.
        dataset: a :class:`NoteTensors` with ``"features"``, as :func:`nsynth_features` returns.
        batch_size: notes per call of ``encode``.

    Returns:
        A :class:`NoteTensors` with ``"code": [code_dim]`` in place of ``"features"``, other columns kept.

    Raises:
        ValueError: if ``dataset`` has no ``"features"`` or ``encode`` does not return one row per note.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if "features" not in dataset.tensors:
        raise ValueError(f"dataset has columns {sorted(dataset.tensors)}; pre_encode needs 'features'.")
    device = config.device_of(encode)
    feats = dataset.tensors["features"]
    chunks = []
    for i in range(0, len(feats), batch_size):
        chunk = feats[i : i + batch_size]
        code = encode(chunk.to(device))
        if not isinstance(code, torch.Tensor) or code.dim() != 2 or len(code) != len(chunk):
            shape = list(code.shape) if isinstance(code, torch.Tensor) else type(code).__name__
            raise ValueError(f"encode returned {shape} for {len(chunk)} notes; it must return [notes, code_dim].")
        chunks.append(code.cpu())
    others = {name: t for name, t in dataset.tensors.items() if name != "features"}
    return NoteTensors({"code": torch.cat(chunks), **others}, dataset.note_str)
