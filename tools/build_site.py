"""Build the course as a static HTML site: every lesson executed, with its figures and playable sound.

``make site`` runs this. Each lesson is executed in student mode (``--fast``: FAST mode) with nbclient in
the course kernel, unless ``site/_executed/`` already holds an execution of the same notebook against the
same ``coursekit`` sources and checkpoints, in the same mode: a rebuild after editing one lesson
re-executes that lesson only. nbconvert (already a course dependency, needs no network) turns each
executed notebook into a page: figures become PNG files beside the page, every WAV player becomes an
MP3 file (lossy, a tenth of the size; a WAV file at rates MP3 lacks) with its player pointing at it,
and each page says when, on what machine and at which commit it was executed. The assignments'
student versions (``assignments/``, without solutions) become pages too, unexecuted. Math is
rendered by MathJax when the page is read online and stays readable LaTeX source offline.

    python tools/build_site.py                      # every lesson, student mode, into site/
    python tools/build_site.py --fast --lessons 06  # one lesson in FAST mode (the test in tests/test_site.py)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import numpy as np
import soundfile as sf
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html_mistune
from nbconvert.preprocessors import ExtractOutputPreprocessor

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT_S = 1800
WAV_SOURCE = re.compile(
    r'<source src="data:audio/(?:wav|x-wav);base64,([A-Za-z0-9+/=\s]+)"\s+type="audio/(?:wav|x-wav)"\s*/?>'
)
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # what MPEG audio allows
PAGE_LIMIT_BYTES = 1_500_000  # each page's HTML; its figures and audio are files beside it


def lesson_paths(numbers: list[str] | None) -> list[Path]:
    """The lesson notebooks to build: all of ``lessons/`` or those whose names start with ``numbers``."""
    lessons = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
    if numbers:
        unknown = [n for n in numbers if not any(p.name.startswith(f"{n}_") for p in lessons)]
        if unknown:
            choices = [p.name[:2] for p in lessons]
            raise SystemExit(f"--lessons {' '.join(unknown)}: no such lesson; choose from {choices}")
        lessons = [p for p in lessons if p.name[:2] in numbers]
    return lessons


def execution_key(notebook: Path, fast: bool) -> str:
    """SHA-256 of what an execution depends on: the notebook, coursekit's sources, the checkpoints, the mode."""
    digest = hashlib.sha256(notebook.read_bytes())
    for path in sorted((ROOT / "coursekit").rglob("*.py")) + [ROOT / "checkpoints" / "registry.json"]:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    digest.update(b"FAST" if fast else b"student")
    return digest.hexdigest()


def git_commit() -> str:
    """The short commit of the working tree, marked when lessons/ or coursekit/ have uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" with uncommitted changes" if git("status", "--porcelain", "lessons", "coursekit") else "")


def machine() -> str:
    """The machine in a few words: CPU, cores, OS, Python."""
    cpu = platform.processor() or platform.machine()
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def executed(notebook: Path, cache: Path, fast: bool) -> nbformat.NotebookNode:
    """The notebook executed in the course kernel (FAST mode if ``fast``), from ``cache`` when still valid."""
    key = execution_key(notebook, fast)
    cached = cache / notebook.name
    if cached.exists():
        nb = nbformat.read(cached, as_version=4)
        if nb.metadata.get("coursekit_site", {}).get("key") == key:
            print(f"{notebook.name}: reusing the execution of {nb.metadata.coursekit_site['executed_at']}")
            return nb
    print(f"{notebook.name}: executing ({'FAST' if fast else 'student'} mode)", flush=True)
    nb = nbformat.read(notebook, as_version=4)
    os.environ["COURSEKIT_FAST"] = "1" if fast else "0"
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures as outputs, even under make test
    start = time.perf_counter()
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="coursekit",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    nb.metadata["coursekit_site"] = {
        "key": key, "seconds": round(time.perf_counter() - start, 1), "fast": fast, "machine": machine(),
        "commit": git_commit(), "executed_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    cache.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    nbformat.write(nb, partial)
    partial.replace(cached)  # never leave a half-written execution behind
    return nb


def wav_to_file(match: re.Match, files: Path, stem: str, counter: list[int]) -> str:
    """Replace one inline WAV ``<source>`` by an audio file in ``files`` and a source pointing at it.

    MP3 where its sample rates allow; a WAV file otherwise (lesson 01 plays audio at 3 kHz).
    """
    signal, sr = sf.read(io.BytesIO(base64.b64decode(match.group(1))), dtype="float32")
    counter[0] += 1
    files.mkdir(parents=True, exist_ok=True)
    if sr in MP3_RATES:
        name, kind = f"audio_{counter[0]:02d}.mp3", "audio/mpeg"
        sf.write(files / name, np.asarray(signal), sr, format="MP3")
    else:
        name, kind = f"audio_{counter[0]:02d}.wav", "audio/wav"
        sf.write(files / name, np.asarray(signal), sr, format="WAV", subtype="PCM_16")
    return f'<source src="{stem}_files/{name}" type="{kind}" />'


def audio_to_files(nb: nbformat.NotebookNode, files: Path, stem: str) -> int:
    """Move every inline WAV of ``nb``'s HTML outputs into audio files; returns how many."""
    counter = [0]
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            page = output.get("data", {}).get("text/html")
            if page:
                text = "".join(page) if isinstance(page, list) else page
                output["data"]["text/html"] = WAV_SOURCE.sub(lambda m: wav_to_file(m, files, stem, counter), text)
    return counter[0]


def banner(meta: dict | None, previous: tuple[str, str] | None, following: tuple[str, str] | None) -> str:
    """Markdown for the top of a page: navigation, and when and where it was executed."""
    links = ["[course map](index.html)"]
    if previous:
        links.insert(0, f"[← {previous[1]}]({previous[0]}.html)")
    if following:
        links.append(f"[{following[1]} →]({following[0]}.html)")
    lines = [" · ".join(links), ""]
    if meta:
        mode = "FAST mode (reduced sizes)" if meta["fast"] else "student mode"
        lines.append(f"*Executed {meta['executed_at']} in {mode} in {meta['seconds']:.0f} s on {meta['machine']}, "
                     f"coursekit commit {meta['commit']}. Sounds are MP3 copies of the notebook's WAV players; "
                     "sliders and other widgets need a running kernel (`make lab`).*")
    else:
        lines.append("*The student version of the assignment, as released: not executed, solutions removed.*")
    return "\n".join(lines)


def page(nb: nbformat.NotebookNode, out: Path, stem: str, top: str) -> Path:
    """Write ``out/stem.html`` with its figures in ``out/stem_files/``; links to notebooks point at pages."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a copy: the cached execution keeps its WAVs
    nb.metadata.pop("widgets", None)  # saved widget state (megabytes of audio): widgets need a kernel anyway
    files = out / f"{stem}_files"
    audio_to_files(nb, files, stem)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(top))
    nb.cells.append(nbformat.v4.new_markdown_cell(top.split("\n")[0]))
    exporter = HTMLExporter(template_name="lab")
    exporter.register_preprocessor(ExtractOutputPreprocessor(output_filename_template="fig_{cell_index}_{index}{extension}"),
                                   enabled=True)
    body, resources = exporter.from_notebook_node(nb, resources={"output_files_dir": f"{stem}_files"})
    for name, data in resources.get("outputs", {}).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    body = re.sub(r'href="(\d\d_[a-z0-9_]+)\.ipynb"', r'href="\1.html"', body)
    body = body.replace('href="../CREDITS.md"', 'href="credits.html"')
    target = out / f"{stem}.html"
    target.write_text(body, encoding="utf-8")
    if target.stat().st_size > PAGE_LIMIT_BYTES:
        raise SystemExit(f"{target}: {target.stat().st_size:,} bytes, over the {PAGE_LIMIT_BYTES:,}-byte page limit; "
                         "move large outputs into files as audio_to_files does")
    return target


def markdown_page(out: Path, name: str, title: str, markdown: str) -> None:
    """A plain page from Markdown (the course map, the credits)."""
    style = "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.5}td,th{padding:.3rem .6rem;"
    style += "border-bottom:1px solid #ddd;vertical-align:top}table{border-collapse:collapse}"
    (out / name).write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                            f"<style>{style}</style></head><body>{markdown2html_mistune(markdown)}</body></html>",
                            encoding="utf-8")


def course_map(lessons: list[tuple[str, dict]], assignments: list[str]) -> str:
    """The landing page's Markdown: lessons/README.md's table with each lesson's measured run time."""
    readme = (ROOT / "lessons" / "README.md").read_text()
    built = dict(lessons)
    rows = []
    for line in readme.splitlines():
        link = re.match(r"\| \[([^\]]+)\]\((\d\d_[a-z0-9_]+)\.ipynb\) \|(.*)\|$", line)
        if link and link.group(2) in built:
            meta = built[link.group(2)]
            mode = "FAST" if meta["fast"] else "student"
            run_time = f"{meta['seconds']:.0f} s ({mode})"
            rows.append(f"| [{link.group(1)}]({link.group(2)}.html) |{link.group(3)}| {run_time} |")
    intro = readme.split("| lesson |")[0].replace("../CREDITS.md", "credits.html").replace("# The lessons", "")
    return "\n".join([
        "# Generative models for audio and music: the coursekit lessons", intro.strip(), "",
        "| lesson | what you learn | source documents | run time |", "| --- | --- | --- | --- |", *rows, "",
        "## Assignments (student versions)", "", *[f"- [{a}]({a}.html)" for a in assignments], "",
        "Data, weights and their licences: [credits](credits.html). The course is MIT-licensed.",
    ])


def build(out: Path, numbers: list[str] | None, fast: bool) -> list[Path]:
    """Build the site into ``out``; returns the pages written."""
    lessons = lesson_paths(numbers)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "_executed"
    written, metas = [], []
    for i, notebook in enumerate(lessons):
        nb = executed(notebook, cache, fast)
        previous = (lessons[i - 1].stem, lessons[i - 1].stem) if i else None
        following = (lessons[i + 1].stem, lessons[i + 1].stem) if i + 1 < len(lessons) else None
        written.append(page(nb, out, notebook.stem, banner(nb.metadata.coursekit_site, previous, following)))
        metas.append((notebook.stem, nb.metadata.coursekit_site))
    releases = sorted((ROOT / "assignments").glob("*/*.ipynb"))
    for release in releases:
        written.append(page(nbformat.read(release, as_version=4), out, release.stem, banner(None, None, None)))
    markdown_page(out, "credits.html", "Credits", (ROOT / "CREDITS.md").read_text())
    markdown_page(out, "index.html", "coursekit", course_map(metas, [r.stem for r in releases]))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "site", help="where the site goes (default: site/)")
    parser.add_argument("--lessons", nargs="+", metavar="NN", help="only these lessons (default: all)")
    parser.add_argument("--fast", action="store_true", help="execute in FAST mode (reduced sizes, as in make test)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    pages = build(args.out, args.lessons, args.fast)
    print(f"{len(pages)} pages in {args.out} in {time.perf_counter() - start:.0f} s; open {args.out / 'index.html'}")


if __name__ == "__main__":
    sys.exit(main())
