"""Rendering benchmark (issue 3): the soundfont player, the NSynth-mini pipeline, and piano-roll parsing.

Pinned to one CPU core (and one torch thread), it measures:

(a) the soundfont player alone, ``SoundfontSynth.render_note`` on exactly the notes NSynth-mini
    renders (read back from a rendered examples.json): notes/s and times real time (4 s a note);
(b) the whole ``render_nsynth_mini`` pipeline into a fresh temporary folder each run (render,
    check, normalise, write wavs and examples.json): notes/s, times real time, MB written;
(c) a cold parse of music21 corpus pieces into piano rolls (``usable_score`` then
    ``score_to_pianoroll``, as ``build_pianorolls`` does), for the first chorales and folk tunes,
    with music21's pickle cache bypassed (``forceSource=True``) so that each is a real parse.

Each stage runs ``--repeats`` times and the table reports the best (minimum) time, since other
work on the machine can only slow a run down; every run's time is listed beside it. It prints a
markdown table and the machine it ran on.

Usage:
    python bench/render.py [--size mini] [--repeats 3] [--pieces 20] [--scratch DIR]

``--scratch /dev/shm`` renders into memory, to separate the disk's share of stage (b) from the CPU's.
Every run's copy stays in the scratch folder until the end: ``--repeats`` times 203 MB for ``mini``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    """One row of the table: a stage, how much it did per run, and every run's time in seconds."""

    stage: str
    count: int  # notes or pieces per run
    unit: str  # "notes" or "pieces"
    times: list[float]
    audio_s: float | None = None  # seconds of audio per run, for the times-real-time column
    megabytes: float | None = None  # MB written per run

    @property
    def best(self) -> float:
        """The fastest run, in seconds."""
        return min(self.times)

    def row(self) -> str:
        """The result as a markdown table row."""
        per_piece = self.unit == "pieces"
        rate = f"{self.best / self.count:.3f} s/piece" if per_piece else f"{self.count / self.best:,.0f} notes/s"
        real_time = f"{self.audio_s / self.best:,.0f}x" if self.audio_s else "-"
        megabytes = f"{self.megabytes:.0f}" if self.megabytes is not None else "-"
        runs = ", ".join(f"{t:.2f}" for t in self.times)
        return (
            f"| {self.stage} | {self.count:,} {self.unit} | {self.best:.2f} | {runs} | {rate} | {real_time} "
            f"| {megabytes} |"
        )


TABLE_HEADER = (
    "| stage | work per run | best (s) | all runs (s) | rate | x real time | MB written |\n"
    "| --- | --- | --- | --- | --- | --- | --- |"
)


def pin_to_one_core() -> int:
    """Run this process on its first allowed CPU, with one thread for torch and BLAS; return that CPU.

    Called before numpy or torch are imported, so that the threads they start inherit the pinning.
    """
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = "1"
    import torch

    torch.set_num_threads(1)
    return cpu


def timed_runs(run: Callable[[], object], repeats: int) -> list[float]:
    """Call ``run`` ``repeats`` times and return each call's wall-clock time in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------- NSynth-mini
def folder_megabytes(root: Path) -> float:
    """Total size in MB (10^6 bytes) of the files under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def rendered_notes(root: Path) -> list[tuple[int, int, int]]:
    """The (program, key played, velocity) of every note of a rendered NSynth-mini, in rendering order."""
    from coursekit.data import instruments, nsynth

    entries = []
    for split in nsynth.SPLITS:
        entries += json.loads((root / f"nsynth-{split}" / "examples.json").read_text()).values()
    entries.sort(key=lambda e: e["note"])
    shift = instruments.TRANSPOSE
    return [(e["instrument"], e["pitch"] + shift.get(e["instrument"], 0), e["velocity"]) for e in entries]


def bench_pipeline(size: str, repeats: int, scratch: Path) -> tuple[Result, list[tuple[int, int, int]]]:
    """Time ``render_nsynth_mini`` into a fresh folder per run; also return the notes it rendered.

    The folders are kept until the caller removes ``scratch``: deleting 200 MB between runs would
    charge the next run with the filesystem's clean-up (journal commits, discards).
    """
    from coursekit.data.nsynth import DURATION, render_nsynth_mini

    roots = [scratch / f"nsynth-{run}" for run in range(repeats)]
    with contextlib.redirect_stdout(None):  # its "building ..." line
        times = [timed_runs(lambda root=root: render_nsynth_mini(root, size=size), 1)[0] for root in roots]
    notes = rendered_notes(roots[-1])
    stage = f"`render_nsynth_mini(size={size!r})`"
    return Result(stage, len(notes), "notes", times, len(notes) * DURATION, folder_megabytes(roots[-1])), notes


def bench_player(notes: list[tuple[int, int, int]], repeats: int) -> Result:
    """Time ``SoundfontSynth.render_note`` alone on ``notes``, one synth loaded beforehand."""
    from coursekit.data.nsynth import DURATION, HOLD, SR
    from coursekit.data.soundfont import SoundfontSynth

    synth = SoundfontSynth(SR)

    def play_all() -> None:
        for program, key, velocity in notes:
            synth.render_note(program, key, velocity, hold=HOLD, duration=DURATION)

    times = timed_runs(play_all, repeats)
    return Result("soundfont player alone (`render_note`)", len(notes), "notes", times, len(notes) * DURATION)


# ----------------------------------------------------------------------------- piano rolls
@contextlib.contextmanager
def music21_pickles_bypassed() -> Iterator[None]:
    """Make ``music21.corpus.parse`` read the source file, neither reading nor writing its pickle cache."""
    from music21 import corpus

    parse = corpus.parse
    corpus.parse = functools.partial(parse, forceSource=True)
    try:
        yield
    finally:
        corpus.parse = parse


def parse_to_pianoroll(style: str, piece: str) -> None:
    """Parse one piece and put it on the grid, as ``build_pianorolls`` does."""
    from coursekit.data.music import usable_score
    from coursekit.data.pianoroll import score_to_pianoroll

    score, _ = usable_score(style, piece)
    if score is not None:
        score_to_pianoroll(score)


def bench_parsing(style: str, n_pieces: int, repeats: int) -> Result:
    """Time a cold parse of the first ``n_pieces`` corpus pieces of ``style`` into piano rolls."""
    from coursekit.data.music import corpus_pieces

    pieces = corpus_pieces(style)[:n_pieces]
    with music21_pickles_bypassed():
        parse_to_pianoroll(style, pieces[0])  # warm-up, not timed: music21's lazy imports and corpus paths
        times = timed_runs(lambda: [parse_to_pianoroll(style, piece) for piece in pieces], repeats)
    return Result(f"parse {style} pieces to piano rolls (cold)", len(pieces), "pieces", times)


# ----------------------------------------------------------------------------- report
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def filesystem(path: Path) -> str:
    """The type and device of the filesystem holding ``path``, from /proc/mounts (e.g. ``ext4 on /dev/vda``)."""
    best, found = "", "unknown filesystem"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount_point, kind = line.split()[:3]
            if path.resolve().is_relative_to(mount_point) and len(mount_point) > len(best):
                best, found = mount_point, f"{kind} on {device}"
    return found


def machine_report(cpu: int, scratch: Path) -> str:
    """Markdown lines naming the machine, the pinning and the versions that matter here."""
    import music21
    import numpy
    import soundfile
    import torch

    tinysoundfont_version = importlib.metadata.version("tinysoundfont")
    return "\n".join(
        [
            f"- machine: {cpu_model()}, {os.cpu_count()} logical cores; pinned to core {cpu}, 1 torch thread",
            f"- NSynth-mini rendered into {scratch} ({filesystem(scratch)})",
            f"- python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}, "
            f"tinysoundfont {tinysoundfont_version}, soundfile {soundfile.__version__} "
            f"(libsndfile {soundfile.__libsndfile_version__}), music21 {music21.__version__}",
        ]
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="mini", help="NSynth-mini size: tiny, mini, full or notes per instrument")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each stage; the best is reported")
    parser.add_argument("--pieces", type=int, default=20, help="pieces of each style to parse")
    parser.add_argument(
        "--scratch", default=None, help="folder to render NSynth-mini into (default: the system's temporary folder)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.pieces < 1:
        parser.error("--repeats and --pieces must be at least 1")
    if args.size.isdigit():
        args.size = int(args.size)
    return args


def main(argv: list[str] | None = None) -> None:
    """Run every stage and print the table and the machine."""
    args = parse_args(argv)
    cpu = pin_to_one_core()
    with tempfile.TemporaryDirectory(prefix="bench-render-", dir=args.scratch) as scratch:
        pipeline, notes = bench_pipeline(args.size, args.repeats, Path(scratch))
    results = [bench_player(notes, args.repeats), pipeline]
    results += [bench_parsing(style, args.pieces, args.repeats) for style in ("chorale", "folk")]
    command = " ".join(["python", "bench/render.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"`{command}` on {datetime.date.today().isoformat()}, best of {args.repeats} runs\n")
    print(TABLE_HEADER)
    print("\n".join(result.row() for result in results))
    print()
    print(machine_report(cpu, Path(args.scratch or tempfile.gettempdir())))


if __name__ == "__main__":
    main()
