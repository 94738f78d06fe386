"""`make site` builds pages that hold every figure and sound of the executed lesson (issue 14).

One lesson (06: figures, audio players and math) is built in FAST mode by tools/build_site.py, as
`make site` builds them all in student mode, and its page is checked against its executed notebook.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
LESSON = "06_latent_vae"
spec = importlib.util.spec_from_file_location("build_site", ROOT / "tools" / "build_site.py")
build_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_site)


class _Refs(HTMLParser):
    """Every img/source src and a/link href of a page, and the audio sources in order."""

    def __init__(self):
        super().__init__()
        self.refs, self.images, self.audio = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        ref = attrs.get("src") or attrs.get("href")
        if ref and tag in ("img", "source", "a", "link", "script"):
            self.refs.append(ref)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "source" and (attrs.get("type") or "").startswith("audio/"):
            self.audio.append(attrs["src"])


def _build(out: Path) -> str:
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), "--fast", "--lessons", LESSON[:2],
                          "--out", str(out)], capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    first = _build(out)
    executed = nbformat.read(out / "_executed" / f"{LESSON}.ipynb", as_version=4)
    page = (out / f"{LESSON}.html").read_text(encoding="utf-8")
    refs = _Refs()
    refs.feed(page)
    return {"out": out, "first": first, "executed": executed, "page": page, "refs": refs}


def _outputs(nb, mime):
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if mime in output.get("data", {}):
                yield output["data"][mime]


def test_every_figure_of_the_executed_lesson_is_on_the_page(site):
    figures = [base64.b64decode(png) for png in _outputs(site["executed"], "image/png")]
    assert figures, "the executed lesson has no figure: was it executed with a non-inline backend?"
    on_page = [(site["out"] / src).read_bytes() for src in site["refs"].images if not src.startswith("data:")]
    assert on_page == figures


def test_every_audio_player_plays_a_file_of_the_original_length(site):
    wavs = [m.group(1) for html in _outputs(site["executed"], "text/html")
            for m in build_site.WAV_SOURCE.finditer("".join(html))]
    assert wavs and len(site["refs"].audio) == len(wavs)
    for encoded, src in zip(wavs, site["refs"].audio, strict=True):
        original, sr = sf.read(io.BytesIO(base64.b64decode(encoded)))
        assert src.endswith(".mp3" if sr in build_site.MP3_RATES else ".wav") and not src.startswith("data:")
        decoded, sr_file = sf.read(site["out"] / src)
        assert sr_file == sr
        lengths = f"{len(decoded) / sr:.2f} s for {len(original) / sr:.2f} s"
        assert abs(len(decoded) - len(original)) / sr < 0.1, f"{src}: {lengths}"
        if src.endswith(".mp3"):
            assert (site["out"] / src).stat().st_size < len(encoded) * 3 / 4  # compressed, not a copy of the WAV
    assert "data:audio/wav" not in site["page"]


def test_math_is_on_the_page_with_its_renderer(site):
    markdown = "\n".join(c.source for c in site["executed"].cells if c.cell_type == "markdown")
    formula = re.search(r"\$([^$\n]{3,})\$", markdown).group(1)
    assert formula.replace("<", "&lt;").replace(">", "&gt;") in site["page"] or formula in site["page"]
    assert "MathJax" in site["page"]


def test_every_local_link_resolves_and_pages_say_where_they_ran(site):
    for html_file in site["out"].glob("*.html"):
        refs = _Refs()
        refs.feed(html_file.read_text(encoding="utf-8"))
        local = [r for r in refs.refs if not re.match(r"(https?:|data:|#|mailto:)", r)]
        missing = [r for r in local if not (site["out"] / r.split("#")[0]).exists()]
        assert not missing, f"{html_file.name} links to missing {missing}"
        assert html_file.stat().st_size <= build_site.PAGE_LIMIT_BYTES
    meta = site["executed"].metadata["coursekit_site"]
    assert meta["fast"] is True and meta["commit"] in site["page"] and meta["machine"] in site["page"]
    index = (site["out"] / "index.html").read_text(encoding="utf-8")
    assert f'href="{LESSON}.html"' in index and 'href="credits.html"' in index


def test_a_second_build_reuses_the_execution(site):
    again = _build(site["out"])
    assert "executing" in site["first"] and "reusing the execution" in again and "executing" not in again


def test_the_execution_key_follows_the_notebook_and_the_mode(tmp_path):
    lesson = ROOT / "lessons" / f"{LESSON}.ipynb"
    copy = tmp_path / lesson.name
    copy.write_bytes(lesson.read_bytes())
    assert build_site.execution_key(copy, True) == build_site.execution_key(lesson, True)
    assert build_site.execution_key(copy, True) != build_site.execution_key(copy, False)
    copy.write_bytes(lesson.read_bytes().replace(b"latent", b"Latent", 1))
    assert build_site.execution_key(copy, True) != build_site.execution_key(lesson, True)


def test_unknown_lesson_is_refused_with_the_choices():
    with pytest.raises(SystemExit, match="--lessons 42: no such lesson; choose from"):
        build_site.lesson_paths(["42"])
