"""Any folder of your own audio files as a dataset: your samples, field recordings, stems.

Files are found recursively by suffix (``coursekit.audio.AUDIO_SUFFIXES``: .wav, .flac, .ogg,
.mp3, .aiff, .aif, in any case); hidden files and folders (names starting with ``.``, such as
macOS's ``._name.wav``) are skipped. Each file is checked when the dataset is built by reading
its header with ``soundfile.info`` (fast: no samples are decoded): a file that soundfile cannot
open, that holds no samples, or that is truncated (a WAV or AIFF whose header declares more frames
than the file holds: an interrupted copy or download) is skipped with a warning naming it and the
fix. Samples are read only when an item is asked for, with :func:`coursekit.audio.load`; a file
whose header is fine but whose data is damaged (or that was cut short after the dataset was built)
raises that function's error, which names the file.

Truncated files are skipped with a warning rather than raising, as unreadable ones are: a folder of
one's own samples often holds a damaged file or two, and one should not stop the whole dataset (nor
be zero-padded into it as if it were a short sound). ``skipped`` lists them, ``describe()`` counts them.

Example:
    >>> ds = AudioFolder("my_samples", sr=16000, duration=1.0)   # my_samples/kick/*.wav, .../snare/*.wav
    >>> print(ds.describe())
    >>> ds[0]["audio"].shape                                      # torch.Size([1, 16000])

Lesson: lessons/00_tour.ipynb
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from pathlib import Path

import soundfile as sf
import torch
from torch.utils.data import Dataset

from coursekit.audio import AUDIO_SUFFIXES, check_sr, describe_truncation, load, trim_or_pad

CATEGORY_RULES = ("parent", "filename", None)
_PREFIX = re.compile(r"[^_\-0-9]*")  # a file name's category: everything before the first _, - or digit


class AudioFolder(Dataset):
    """Every audio file under a folder, loaded lazily, resampled, optionally cut or padded to one length.

    Args:
        root: the folder; searched recursively.
        sr: sample rate in Hz that every file is resampled to (default 16000).
        duration: seconds; each item is cut at the end, or padded with zeros at the end, to
            ``round(duration * sr)`` samples. ``None`` keeps each file's length (then batch with
            ``batch_size=1``: the default collate cannot stack different lengths).
        mono: average each file's channels to one. With ``mono=False`` every file must have the
            same number of channels (checked when the dataset is built).
        category_from: where an item's category comes from:

            - ``"parent"`` (default): the name of the folder the file is in
              (``root/kick/808.wav`` -> ``"kick"``; a file directly in ``root`` gets ``root``'s name).
            - ``"filename"``: the start of the file's name up to the first ``_``, ``-`` or digit,
              spaces stripped, case kept (``kick_01.wav``, ``kick-soft.wav``, ``kick3.wav`` -> ``"kick"``).
              A name that starts with one of those (``808_kick.wav``) has no category: an error lists them.
            - ``None``: no categories (``"category"`` is ``""`` and ``"category_index"`` is -1).

    Items:
        ``{"audio": float32 Tensor [channels, samples] (channels 1 when mono) in [-1, 1] (resampling
        can overshoot a full-scale file by a few percent), "sr": int Hz, "path": str (absolute),
        "category": str, "category_index": int (position in ``categories``)}``.

    Attributes:
        files: the readable audio files, sorted. skipped: those skipped (unreadable, empty or
            truncated), with a warning each naming the file and the fix.
        categories: the sorted category names (empty when ``category_from`` is None).

    Raises:
        FileNotFoundError: ``root`` does not exist, or holds no audio files.
        NotADirectoryError: ``root`` is a file.
        ValueError: no file is readable, a bad argument, channel counts differ with ``mono=False``,
            or file names without a category prefix with ``category_from="filename"``. Reading an
            item raises :func:`coursekit.audio.load`'s errors (e.g. a file truncated after the
            dataset was built), each naming the file.

    Example:
        >>> ds = AudioFolder("my_samples", duration=2.0)
        >>> ds.categories                     # e.g. ['kick', 'snare']
        >>> batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))   # batch["audio"]: [8, 1, 32000]

    Lesson: lessons/00_tour.ipynb
    """

    def __init__(
        self,
        root: str | Path,
        sr: int = 16000,
        duration: float | None = None,
        mono: bool = True,
        category_from: str | None = "parent",
    ) -> None:
        if category_from not in CATEGORY_RULES:
            raise ValueError(f"category_from={category_from!r}: use 'parent', 'filename' or None.")
        self.root = _check_root(root)
        self.sr = check_sr(sr)
        self.n_samples = _n_samples(duration, self.sr)
        self.mono = mono
        self.category_from = category_from
        candidates = find_audio_files(self.root)
        channels = _read_channels(candidates, self.root)
        self.files = list(channels)
        self.skipped = [path for path in candidates if path not in channels]
        if not mono:
            _check_same_channels(channels, self.root)
        self._category_names = _categories(self.files, category_from)
        self.categories = sorted(set(self._category_names)) if category_from else []
        self._category_index = {name: index for index, name in enumerate(self.categories)}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int | str]:
        path = self.files[index]
        x, sr = load(path, sr=self.sr, mono=self.mono)
        if self.n_samples is not None:
            x = trim_or_pad(x, self.n_samples)
        category = self._category_names[index]
        category_index = self._category_index.get(category, -1)
        return {"audio": x, "sr": sr, "path": str(path), "category": category, "category_index": category_index}

    def describe(self) -> str:
        """One sentence: how many files, which categories, at what rate and length.

        Lesson: lessons/00_tour.ipynb
        """
        counts = Counter(self._category_names)
        kinds = ", ".join(f"{name} {counts[name]}" for name in self.categories) or "no categories"
        length = f"{self.n_samples / self.sr:g} s each" if self.n_samples else "each file's own length"
        skipped = f"; {len(self.skipped)} unreadable skipped" if self.skipped else ""
        channels = "mono" if self.mono else "channels kept"
        return f"AudioFolder {self.root}: {len(self)} files ({kinds}){skipped}; {self.sr} Hz, {channels}, {length}."

    def __repr__(self) -> str:
        return self.describe()


def find_audio_files(root: Path) -> list[Path]:
    """The audio files under ``root`` (recursive, sorted), by suffix in any case; hidden names skipped.

    Raises:
        FileNotFoundError: when there are none, naming the suffixes searched and what was found instead.

    Lesson: lessons/00_tour.ipynb
    """
    visible = [p for p in sorted(root.rglob("*")) if p.is_file() and not _is_hidden(p, root)]
    found = [p for p in visible if p.suffix.lower() in AUDIO_SUFFIXES]
    if not found:
        others = sorted({p.suffix.lower() or "(no suffix)" for p in visible})
        holds = f"it holds {len(visible)} other files ({', '.join(others)})" if visible else "it is empty"
        raise FileNotFoundError(
            f"no audio files under {root}: searched it and its subfolders for {', '.join(AUDIO_SUFFIXES)} "
            f"(hidden files skipped), and {holds}. Point root at your samples, or convert them to wav."
        )
    return found


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _check_root(root: str | Path) -> Path:
    path = Path(root).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"audio folder not found: {path}. Check the path (relative to {Path.cwd()}).")
    if not path.is_dir():
        raise NotADirectoryError(
            f"{path} is a file, not a folder: pass the folder that holds your audio files (e.g. {path.parent}), "
            "or load a single file with coursekit.audio.load."
        )
    return path


def _n_samples(duration: float | None, sr: int) -> int | None:
    if duration is None:
        return None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0:
        raise ValueError(f"duration={duration!r}: give a positive number of seconds, or None to keep each length.")
    n_samples = round(duration * sr)
    if n_samples < 1:
        raise ValueError(f"duration={duration} s is shorter than one sample at sr={sr} Hz.")
    return n_samples


def _read_channels(paths: list[Path], root: Path) -> dict[Path, int]:
    """``{path: channels}`` from the headers of the files that open, are whole and hold samples; warn for the rest."""
    channels = {}
    for path in paths:
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as err:
            warnings.warn(
                f"skipping {path}: soundfile cannot read it ({err}). It is corrupt or not really a "
                f"{path.suffix} file: re-export it, or convert it with `ffmpeg -i {path.name} out.wav`.",
                stacklevel=3,
            )
            continue
        reason = describe_truncation(path, info.frames)  # soundfile counts only the frames present
        if reason is not None:
            warnings.warn(f"skipping {path}: it is truncated: {reason}", stacklevel=3)
            continue
        if info.frames == 0:
            warnings.warn(f"skipping {path}: it holds no samples.", stacklevel=3)
            continue
        channels[path] = info.channels
    if not channels:
        raise ValueError(f"none of the {len(paths)} audio files under {root} can be read (see the warnings above).")
    return channels


def _check_same_channels(channels: dict[Path, int], root: Path) -> None:
    by_channels: dict[int, list[Path]] = {}
    for path, count in channels.items():
        by_channels.setdefault(count, []).append(path)
    if len(by_channels) > 1:
        groups = "; ".join(
            f"{count} channel(s): {len(paths)} files, e.g. {paths[0].relative_to(root)}"
            for count, paths in sorted(by_channels.items())
        )
        raise ValueError(
            f"mono=False needs every file to have the same number of channels, but under {root}: {groups}. "
            "Pass mono=True to average each file to one channel, or convert the files."
        )


def _categories(files: list[Path], rule: str | None) -> list[str]:
    """Each file's category by ``rule`` (see :class:`AudioFolder`); raise when a file name has no prefix."""
    if rule is None:
        return [""] * len(files)
    if rule == "parent":
        return [path.parent.name for path in files]
    names = [_PREFIX.match(path.stem).group().strip() for path in files]
    unnamed = [path.name for path, name in zip(files, names, strict=True) if not name]
    if unnamed:
        raise ValueError(
            f"category_from='filename' takes the start of each file name up to the first _, - or digit, but "
            f"{len(unnamed)} file names start with one (e.g. {', '.join(unnamed[:5])}): rename them "
            "(kick_01.wav), or use category_from='parent' with one folder per category, or None."
        )
    return names
