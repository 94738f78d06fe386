"""coursekit.data.cache: reuse, rebuild, the refusal to replace foreign folders, content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import pytest

from coursekit.data import cache, loops, nsynth
from coursekit.data.cache import MANIFEST, cache_problem, cached_build, verify_cache

PARAMS = {"version": 1, "n": 3}
SAMPLE = b"RIFF" + bytes(range(1, 200)) * 5  # stands for a wav: a header, then non-zero samples
LABELS = {"a": "dog", "b": "cat"}


def write_dataset(folder: Path, labels: dict | None = None) -> None:
    """A small dataset: two "samples" in a subfolder and a labels file."""
    (folder / "audio").mkdir()
    (folder / "audio" / "0.wav").write_bytes(SAMPLE)
    (folder / "audio" / "1.wav").write_bytes(SAMPLE[::-1])
    (folder / "labels.json").write_text(json.dumps(labels or LABELS))


def build_counting(calls: list):
    def build(folder: Path) -> None:
        calls.append(folder)
        write_dataset(folder)

    return build


def quiet_build(root: Path, params=PARAMS, build=write_dataset, **kwargs) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a first build or a reuse warns about nothing
        return cached_build(root, params, build, verbose=False, **kwargs)


def siblings(folder: Path) -> list[str]:
    """Everything beside ``folder`` (temporary and set-aside folders start with a dot)."""
    return sorted(p.name for p in folder.parent.iterdir() if p != folder)


# ----------------------------------------------------------------------------- round trip and rebuilds
def test_round_trip_builds_once_then_reuses_without_building(tmp_path):
    calls = []
    root = quiet_build(tmp_path / "demo", build=build_counting(calls))
    assert root == tmp_path / "demo" and len(calls) == 1
    assert (root / "audio" / "0.wav").read_bytes() == SAMPLE
    assert json.loads((root / "labels.json").read_text()) == LABELS
    assert cache_problem(root, PARAMS) is None and verify_cache(root) is None

    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["params"] == PARAMS
    assert sorted(manifest["files"]) == ["audio/0.wav", "audio/1.wav", "labels.json"]
    entry = manifest["files"]["audio/0.wav"]
    assert entry["bytes"] == len(SAMPLE) and entry["sha256"] == hashlib.sha256(SAMPLE).hexdigest()
    assert entry["mtime_ns"] == (root / "audio" / "0.wav").stat().st_mtime_ns

    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert quiet_build(root, build=build_counting(calls)) == root
    assert len(calls) == 1  # reused
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes
    assert siblings(root) == []


def test_a_built_folder_gets_the_permissions_mkdir_would_give(tmp_path):
    import stat

    before = os.umask(0o022)
    try:
        (tmp_path / "plain").mkdir()
        root = quiet_build(tmp_path / "data")
    finally:
        os.umask(before)
    assert stat.S_IMODE(root.stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / MANIFEST).stat().st_mode) == 0o644


def test_first_build_prints_a_line_when_verbose(tmp_path, capsys):
    cached_build(tmp_path / "demo", PARAMS, write_dataset)
    assert capsys.readouterr().out == f"building demo in {tmp_path} (once; later runs reuse it)\n"


def test_a_change_of_parameters_rebuilds_with_a_warning(tmp_path):
    root = quiet_build(tmp_path / "demo")
    with pytest.warns(UserWarning, match=r"rebuilding .*demo: it was built with different parameters"):
        cached_build(root, {"version": 2}, lambda folder: (folder / "new.txt").write_text("v2"))
    assert sorted(p.name for p in root.iterdir()) == [MANIFEST, "new.txt"]
    assert json.loads((root / MANIFEST).read_text())["params"] == {"version": 2}
    assert siblings(root) == []  # the previous build is gone, and nothing else was left


def test_a_missing_or_extra_file_is_named_and_rebuilt(tmp_path):
    root = quiet_build(tmp_path / "demo")
    (root / "audio" / "1.wav").unlink()
    (root / "notes.txt").write_text("mine")
    problem = cache_problem(root, PARAMS)
    assert "audio/1.wav is missing" in problem and "notes.txt is not part of it" in problem
    with pytest.warns(UserWarning, match=r"rebuilding .*demo: its files do not match .*audio/1.wav is missing"):
        rebuilt = cached_build(root, PARAMS, write_dataset, verbose=False)
    assert (rebuilt / "audio" / "1.wav").read_bytes() == SAMPLE[::-1]
    assert not (root / "notes.txt").exists()


# ----------------------------------------------------------------------------- never delete a folder we did not build
def test_a_folder_of_the_student_is_refused_and_left_as_it_was(tmp_path):
    mine = tmp_path / "my_project"
    mine.mkdir()
    (mine / "essay.txt").write_text("three weeks of work")
    calls = []
    with pytest.raises(FileExistsError) as error:
        cached_build(mine, PARAMS, build_counting(calls))
    message = str(error.value)
    assert str(mine) in message and MANIFEST in message
    assert "pass a new or empty folder" in message and "delete it yourself" in message
    assert calls == []  # refused before building
    assert (mine / "essay.txt").read_text() == "three weeks of work"
    assert sorted(p.name for p in mine.iterdir()) == ["essay.txt"] and siblings(mine) == []


@pytest.mark.parametrize(
    "manifest",
    [b"\x00\xff not json", b'{"title": "my own manifest"}', b"[1, 2]"],
    ids=["unreadable", "someone else's", "not a dict"],
)
def test_a_folder_whose_manifest_is_not_ours_is_refused(tmp_path, manifest):
    mine = tmp_path / "my_project"
    mine.mkdir()
    (mine / MANIFEST).write_bytes(manifest)
    with pytest.raises(FileExistsError, match=r"my_project .*not written by coursekit"):
        cached_build(mine, PARAMS, write_dataset)
    assert (mine / MANIFEST).read_bytes() == manifest


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    target = tmp_path / "demo"
    target.write_text("a file")
    with pytest.raises(FileExistsError, match=r"demo is a file"):
        cached_build(target, PARAMS, write_dataset)
    assert target.read_text() == "a file"


def test_an_empty_existing_folder_is_built_into(tmp_path):
    (tmp_path / "demo").mkdir()
    root = quiet_build(tmp_path / "demo")
    assert verify_cache(root) is None and (root / "labels.json").exists()


def test_render_nsynth_mini_and_render_loops_refuse_a_folder_of_the_student(tmp_path):
    mine = tmp_path / "my_recordings"
    mine.mkdir()
    (mine / "take1.wav").write_bytes(SAMPLE)
    with pytest.raises(FileExistsError, match=r"my_recordings"):
        nsynth.render_nsynth_mini(mine, size="tiny")
    with pytest.raises(FileExistsError, match=r"my_recordings"):
        loops.render_loops(mine, n_loops=1, bars=1)
    assert sorted(p.name for p in mine.iterdir()) == ["take1.wav"]
    assert (mine / "take1.wav").read_bytes() == SAMPLE


def test_a_foreign_folder_that_appears_during_the_build_is_not_replaced(tmp_path):
    root = tmp_path / "demo"

    def build(folder: Path) -> None:  # meanwhile, the student makes a folder of that name
        write_dataset(folder)
        root.mkdir()
        (root / "essay.txt").write_text("mine")

    with pytest.raises(FileExistsError, match=r"demo"):
        cached_build(root, PARAMS, build, verbose=False)
    assert sorted(p.name for p in root.iterdir()) == ["essay.txt"]
    assert siblings(root) == []  # the temporary build is removed


def test_a_rebuild_replaces_only_our_previous_build(tmp_path):
    (tmp_path / "neighbour").mkdir()
    (tmp_path / "neighbour" / "keep.txt").write_text("keep")
    root = quiet_build(tmp_path / "demo")
    with pytest.warns(UserWarning, match="different parameters"):
        cached_build(root, {"version": 2}, write_dataset, verbose=False)
    assert (tmp_path / "neighbour" / "keep.txt").read_text() == "keep"
    assert siblings(root) == ["neighbour"]


# ----------------------------------------------------------------------------- content hashes
def test_a_zeroed_sample_of_the_same_size_is_detected_named_and_rebuilt(tmp_path):
    root = quiet_build(tmp_path / "demo")
    wav = root / "audio" / "0.wav"
    wav.write_bytes(SAMPLE[:4] + bytes(len(SAMPLE) - 4))  # the samples zeroed, the size unchanged
    problem = cache_problem(root, PARAMS)
    assert problem is not None and "audio/0.wav changed since it was built" in problem
    assert verify_cache(root) == problem
    with pytest.warns(UserWarning, match=r"rebuilding .*demo: its files do not match .*audio/0.wav changed"):
        cached_build(root, PARAMS, write_dataset, verbose=False)
    assert wav.read_bytes() == SAMPLE


def test_an_edited_label_of_the_same_size_is_detected_and_rebuilt(tmp_path):
    root = quiet_build(tmp_path / "demo")
    labels = root / "labels.json"
    edited = labels.read_text().replace("dog", "cow")
    assert len(edited) == len(labels.read_text())
    labels.write_text(edited)
    assert "labels.json changed since it was built" in cache_problem(root, PARAMS)
    with pytest.warns(UserWarning, match=r"rebuilding .*demo: .*labels.json changed since it was built"):
        cached_build(root, PARAMS, write_dataset, verbose=False)
    assert json.loads(labels.read_text()) == LABELS


def test_a_touched_but_unchanged_file_is_hashed_once_and_reused(tmp_path):
    root = quiet_build(tmp_path / "demo")
    wav = root / "audio" / "1.wav"
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 5_000_000_000))  # e.g. copied without -p
    calls = []
    assert quiet_build(root, build=build_counting(calls)) == root and calls == []
    recorded = json.loads((root / MANIFEST).read_text())["files"]["audio/1.wav"]["mtime_ns"]
    assert recorded == wav.stat().st_mtime_ns  # the new time is recorded, so the next check skips the hash


def test_a_change_that_keeps_size_and_time_escapes_the_cheap_check_but_not_full_verification(tmp_path):
    root = quiet_build(tmp_path / "demo")
    wav = root / "audio" / "0.wav"
    stat = wav.stat()
    wav.write_bytes(bytes(len(SAMPLE)))
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # size and time as recorded
    assert cache_problem(root, PARAMS) is None  # the cheap check trusts size and time
    assert "audio/0.wav changed since it was built" in cache_problem(root, PARAMS, verify=True)
    assert "audio/0.wav changed since it was built" in verify_cache(root)
    with pytest.warns(UserWarning, match=r"audio/0.wav changed"):
        cached_build(root, PARAMS, write_dataset, verbose=False, verify=True)
    assert wav.read_bytes() == SAMPLE


def test_a_manifest_from_before_hashes_is_ours_but_stale_and_rebuilt_once(tmp_path):
    root = tmp_path / "demo"
    root.mkdir()
    write_dataset(root)
    files = [p for p in root.rglob("*") if p.is_file()]
    old = {"params": PARAMS, "inventory": {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}}
    (root / MANIFEST).write_text(json.dumps(old))
    assert "older coursekit" in cache_problem(root, PARAMS)
    with pytest.warns(UserWarning, match=r"rebuilding .*demo: .*older coursekit without file hashes"):
        cached_build(root, PARAMS, write_dataset, verbose=False)
    assert verify_cache(root) is None
    quiet_build(root)  # once: the new manifest is reused without a warning


def test_a_damaged_manifest_of_ours_is_rebuilt(tmp_path):
    root = quiet_build(tmp_path / "demo")
    manifest = json.loads((root / MANIFEST).read_text())
    del manifest["files"]["labels.json"]["sha256"]
    (root / MANIFEST).write_text(json.dumps(manifest))
    assert "is damaged" in verify_cache(root)
    with pytest.warns(UserWarning, match=rf"rebuilding .*demo: its {MANIFEST} is damaged"):
        cached_build(root, PARAMS, write_dataset, verbose=False)
    assert verify_cache(root) is None


def test_verify_cache_reports_a_folder_that_is_not_a_build(tmp_path):
    assert "does not exist" in verify_cache(tmp_path / "nothing")
    assert f"{MANIFEST} is missing" in verify_cache(tmp_path)


# ----------------------------------------------------------------------------- atomic manifest, no half-written folder
def test_the_manifest_is_written_through_atomic_write(tmp_path, monkeypatch):
    written = []

    def recording(path, write, *args, **kwargs):
        written.append(Path(path))
        return atomic_write(path, write, *args, **kwargs)

    atomic_write = cache.atomic_write
    monkeypatch.setattr(cache, "atomic_write", recording)
    root = quiet_build(tmp_path / "demo")
    assert [p.name for p in written] == [MANIFEST]
    assert json.loads((root / MANIFEST).read_text())["params"] == PARAMS


def test_an_exception_in_build_leaves_no_folder_behind(tmp_path):
    def failing(folder: Path) -> None:
        write_dataset(folder)
        raise RuntimeError("the soundfont crashed")

    with pytest.raises(RuntimeError, match="soundfont crashed"):
        cached_build(tmp_path / "demo", PARAMS, failing, verbose=False)
    assert list(tmp_path.iterdir()) == []


def test_an_exception_in_a_rebuild_keeps_the_previous_build(tmp_path):
    root = quiet_build(tmp_path / "demo")

    def failing(folder: Path) -> None:
        (folder / "half.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="different parameters"):
        cached_build(root, {"version": 2}, failing, verbose=False)
    assert siblings(root) == []
    assert verify_cache(root) is None and cache_problem(root, PARAMS) is None
