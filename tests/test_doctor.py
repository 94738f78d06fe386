"""coursekit.doctor and ``python -m coursekit doctor``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit import __main__ as cli
from coursekit import config, doctor
from coursekit.data.cache import MANIFEST, cached_build


@pytest.fixture(autouse=True)
def _empty_data_folder(monkeypatch, tmp_path):
    """Each test sees a data folder of its own, not yet made: what the datasets in data/ hold is not its subject."""
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "fresh-data"))


def problems_with(monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return doctor.report()[1]


def test_report_on_this_machine_has_no_problems_and_lists_every_package():
    lines, problems = doctor.report()
    assert problems == []
    for package in doctor.PACKAGES:
        assert f"{package:<12} {doctor.version_of(package)}" in lines
    assert f"device       {config.get_device()}" in lines
    assert all(any(line.startswith(f"  [ok] {source.name}: ") for line in lines) for source in doctor.SOURCES)


def test_version_of_reads_installed_distribution_versions():
    assert doctor.version_of("numpy") == np.__version__
    assert torch.__version__.startswith(doctor.version_of("torch"))
    assert doctor.version_of("no-such-distribution-xyz") == "not installed"


def test_package_file_finds_shipped_files_and_returns_none_otherwise():
    soundfont = doctor.package_file("pretty_midi", "TimGM6mb.sf2")
    assert soundfont is not None and soundfont.is_file() and soundfont.name == "TimGM6mb.sf2"
    assert doctor.package_file("pretty_midi", "missing.sf2") is None
    assert doctor.package_file("no_such_package_xyz", "x") is None
    assert doctor.package_file("glob", "x") is None  # a plain module, not a package


def test_missing_source_is_reported_with_its_fix(monkeypatch):
    missing = doctor.Source("Example sounds", "pretty_midi", "no_such_file.sf2", "pip install example-sounds")
    monkeypatch.setattr(doctor, "SOURCES", (missing,))
    lines, problems = doctor.report()
    assert problems == ["Example sounds not found: pip install example-sounds"]
    assert "  [MISSING] Example sounds: pretty_midi" in lines


def test_missing_package_is_reported_with_its_fix(monkeypatch):
    monkeypatch.setattr(doctor, "PACKAGES", ("no-such-distribution-xyz",))
    lines, problems = doctor.report()
    assert "no-such-distribution-xyz not installed" in lines
    assert problems == [
        "no-such-distribution-xyz is missing: run `make lab` (or `pip install -e .`) in the repository."
    ]


def test_bad_device_request_is_reported(monkeypatch):
    problems = problems_with(monkeypatch, COURSEKIT_DEVICE="gpu0")
    assert problems == ["COURSEKIT_DEVICE='gpu0' is not a device name: use cpu, cuda, cuda:N or mps."]


def test_data_folder_that_is_a_file_is_reported(monkeypatch, tmp_path):
    data = tmp_path / "data"
    data.write_text("not a folder")
    problems = problems_with(monkeypatch, COURSEKIT_DATA=data)
    assert problems == [f"data folder {data} is a file: remove it or set COURSEKIT_DATA to a folder."]


def test_missing_checkpoint_folder_is_reported(monkeypatch, tmp_path):
    ckpt = tmp_path / "checkpoints"
    problems = problems_with(monkeypatch, COURSEKIT_CHECKPOINTS=ckpt)
    assert problems == [f"checkpoint folder {ckpt} is missing: restore it with `git checkout checkpoints`."]


def test_report_counts_checkpoint_files(monkeypatch, tmp_path):
    for name in ("a.pt", "b.pt", "notes.txt"):
        (tmp_path / name).touch()
    monkeypatch.setenv("COURSEKIT_CHECKPOINTS", str(tmp_path))
    assert f"checkpoints  {tmp_path} (2 files)" in doctor.report()[0]


def test_run_prints_all_good_and_returns_zero(capsys):
    assert doctor.run() == 0
    out = capsys.readouterr().out
    assert out.startswith("coursekit doctor\n")
    assert out.rstrip().endswith("all good.")
    assert "to fix:" not in out


def test_run_prints_fixes_and_returns_one(monkeypatch, capsys):
    monkeypatch.setenv("COURSEKIT_DEVICE", "gpu0")
    assert doctor.run() == 1
    out = capsys.readouterr().out
    assert "\nto fix:\n  - COURSEKIT_DEVICE='gpu0' is not a device name" in out
    assert "all good." not in out


def test_main_runs_doctor_and_requires_a_command(capsys):
    assert cli.main(["doctor"]) == 0
    assert "all good." in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


def test_python_dash_m_coursekit_doctor_exits_zero_and_reports_the_device():
    # conftest.py unsets COURSEKIT_* variables; the child sees only COURSEKIT_DATA, a fresh folder (fixture above).
    result = subprocess.run(
        [sys.executable, "-m", "coursekit", "doctor"],
        cwd=config.repo_root(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\ndevice " in result.stdout
    assert "all good." in result.stdout


def build_fake_dataset(root: Path) -> Path:
    """A cached build at ``root`` (two small files), as a data module would make it."""

    def build(folder: Path) -> None:
        (folder / "audio").mkdir()
        (folder / "audio" / "a.wav").write_bytes(b"RIFF" + bytes(range(1, 101)))
        (folder / "examples.json").write_text('{"a": {"pitch": 60}}')

    return cached_build(root, {"version": 1}, build, verbose=False)


def test_generated_datasets_are_listed_as_built_or_not(monkeypatch, tmp_path):
    build_fake_dataset(tmp_path / "nsynth_mini-tiny-seed0")
    (tmp_path / "techno_loops_2x1bar_seed0").mkdir()  # empty: nothing built there yet
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    lines, problems = doctor.report()
    assert "  [ok] NSynth-mini notes: built: nsynth_mini-tiny-seed0" in lines
    assert "  [--] techno loops: not built yet; coursekit.data.loops.render_loops() builds it" in lines
    assert problems == []


def test_a_dataset_whose_file_changed_is_reported_naming_the_file(monkeypatch, tmp_path):
    root = build_fake_dataset(tmp_path / "nsynth_mini-tiny-seed0")
    (root / "examples.json").write_text('{"a": {"pitch": 61}}')  # the same size
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    lines, problems = doctor.report()
    assert "  [CHANGED] NSynth-mini notes: nsynth_mini-tiny-seed0" in lines
    assert problems == [
        f"NSynth-mini notes in {root}: its files do not match its {MANIFEST}: examples.json changed since it was built "
        "(its SHA-256 differs): coursekit.data.nsynth.render_nsynth_mini() rebuilds it on its next use."
    ]


def test_a_dataset_built_before_manifests_held_hashes_is_listed_but_not_a_problem(monkeypatch, tmp_path):
    root = tmp_path / "music" / "4pieces-seed0-16000hz"
    root.mkdir(parents=True)
    (root / "metadata.json").write_text("{}")
    (root / MANIFEST).write_text(json.dumps({"params": {"n_pieces": 4}, "inventory": {"files": 1, "bytes": 2}}))
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    lines, problems = doctor.report()
    old = "  [old] rendered music: 4pieces-seed0-16000hz (built by an older coursekit; rebuilt on its next use)"
    assert old in lines
    assert problems == []


def test_a_dataset_folder_that_coursekit_did_not_build_is_reported(monkeypatch, tmp_path):
    foreign = tmp_path / "techno_loops_2x1bar_seed0"
    foreign.mkdir()
    (foreign / "my_loop.wav").write_bytes(b"mine")
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    lines, problems = doctor.report()
    assert "  [FOREIGN] techno loops: techno_loops_2x1bar_seed0" in lines
    assert len(problems) == 1
    assert problems[0].startswith(f"techno loops in {foreign}: {foreign / MANIFEST} is missing")
    assert problems[0].endswith(
        "coursekit.data.loops.render_loops() will not replace a folder it did not build: "
        "move your files out of it, or delete it yourself if it is a stale build."
    )


def _registry_with_one_checkpoint(tmp_path, contents: bytes) -> None:
    (tmp_path / "tiny.pt").write_bytes(contents)
    entry = {"file": "tiny.pt", "sha256": hashlib.sha256(b"weights").hexdigest(), "recipe": "python -m x",
             "size_bytes": 7, "description": "a tiny model"}
    (tmp_path / "registry.json").write_text(json.dumps({"tiny": entry}))


def test_shipped_checkpoint_that_matches_its_sha256_is_ok(monkeypatch, tmp_path):
    _registry_with_one_checkpoint(tmp_path, b"weights")
    monkeypatch.setenv("COURSEKIT_CHECKPOINTS", str(tmp_path))
    lines, problems = doctor.report()
    assert "  [ok] tiny: a tiny model" in lines and problems == []


def test_modified_or_missing_shipped_checkpoint_is_reported_with_its_recipe(monkeypatch, tmp_path):
    _registry_with_one_checkpoint(tmp_path, b"tampered")
    monkeypatch.setenv("COURSEKIT_CHECKPOINTS", str(tmp_path))
    lines, problems = doctor.report()
    assert "  [CHANGED] tiny: a tiny model" in lines
    assert problems == [f"checkpoint tiny ({tmp_path / 'tiny.pt'}) differs from its registered SHA-256: "
                        "run `git checkout checkpoints` or `python -m x`."]
    (tmp_path / "tiny.pt").unlink()
    assert doctor.report()[1] == [f"checkpoint tiny ({tmp_path / 'tiny.pt'}) is missing: "
                                  "run `git checkout checkpoints` or `python -m x`."]


# ----------------------------------------------------------------------------- bad FAST value, registry, read-only data
def run_doctor_in_a_child(**env) -> subprocess.CompletedProcess:
    child_env = os.environ | env  # COURSEKIT_DATA is a fresh folder (the fixture above); nothing else is set
    return subprocess.run(
        [sys.executable, "-m", "coursekit", "doctor"],
        cwd=config.repo_root(),
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_doctor_reports_a_bad_fast_value_without_a_traceback():
    result = run_doctor_in_a_child(COURSEKIT_FAST="maybe")
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == 1
    assert (
        "\nto fix:\n  - COURSEKIT_FAST='maybe' is not understood: set it to 1 for FAST mode or 0 (or unset it) "
        "for student mode." in result.stdout
    )


def test_a_missing_registry_in_the_repository_is_reported_with_git_checkout(monkeypatch, tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()  # the repository's checkpoint folder, without registry.json
    monkeypatch.setattr(config, "repo_root", lambda: tmp_path)
    registry = tmp_path / "checkpoints" / "registry.json"
    assert doctor.report()[1] == [
        f"checkpoint registry {registry} is missing, so the shipped checkpoints cannot be checked or loaded: "
        "restore it with `git checkout checkpoints/registry.json`."
    ]
    assert doctor.run() == 1
    assert "all good." not in capsys.readouterr().out


def test_a_missing_registry_elsewhere_is_reported_with_the_fix(monkeypatch, tmp_path):
    problems = problems_with(monkeypatch, COURSEKIT_CHECKPOINTS=tmp_path)
    assert problems == [
        f"checkpoint registry {tmp_path / 'registry.json'} is missing, so the shipped checkpoints cannot be checked "
        "or loaded: restore it with `git checkout checkpoints/registry.json` in the repository and copy it there, "
        "or unset COURSEKIT_CHECKPOINTS."
    ]


@contextlib.contextmanager
def without_root_privileges():
    """Run the block as the user ``nobody`` (effective ids) when the tests run as root, as in CI.

    Root may write into any folder whatever its permissions, so a read-only folder is only
    read-only to an ordinary user. The real ids stay root's, which lets the block switch back.
    """
    if os.geteuid() != 0:
        yield
        return
    nobody = pwd.getpwnam("nobody")
    os.setegid(nobody.pw_gid)
    os.seteuid(nobody.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def open_tmp():
    """A temporary folder every user may enter (pytest's tmp_path is private to root when run as root)."""
    folder = Path(tempfile.mkdtemp(prefix="coursekit-doctor-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


def test_a_read_only_data_folder_is_reported(monkeypatch, open_tmp, capsys):
    data, writable = open_tmp / "data", open_tmp / "writable"
    data.mkdir(mode=0o555)
    data.chmod(0o555)
    writable.mkdir()
    writable.chmod(0o777)
    with without_root_privileges():  # only the check itself runs as nobody: the checkout may be private to root
        seen_by_nobody = {folder: doctor.writable(folder) for folder in (writable, data)}
    assert seen_by_nobody == {writable: True, data: False}
    monkeypatch.setattr(doctor, "writable", seen_by_nobody.__getitem__)  # the rest of the report as root
    monkeypatch.setenv("COURSEKIT_DATA", str(writable))
    assert doctor.report()[1] == []
    monkeypatch.setenv("COURSEKIT_DATA", str(data))
    problems = doctor.report()[1]
    code = doctor.run()
    assert problems == [
        f"data folder {data} is not writable, so the datasets cannot be built there: "
        f"make it writable (`chmod u+w {data}`) or set COURSEKIT_DATA to a folder you can write to."
    ]
    assert code == 1 and "all good." not in capsys.readouterr().out


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_data_folder_that_cannot_be_created_is_reported_even_as_root(monkeypatch):
    # Nobody, root included, can create a folder in /proc: os.access alone would tell root yes.
    data = Path("/proc/coursekit-data")
    problems = problems_with(monkeypatch, COURSEKIT_DATA=data)
    assert problems == [
        f"data folder {data} cannot be created (/proc is not writable), so the datasets cannot be built: "
        "set COURSEKIT_DATA to a folder you can write to."
    ]


def test_doctor_lists_the_students_own_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    lines, _ = doctor.report()
    assert "your own runs: none (lessons load the shipped checkpoints)" in lines
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "vae_mnist_conv.pt").write_bytes(b"x")
    lines, problems = doctor.report()
    start = lines.index("your own runs (lessons load these instead of the shipped checkpoints; delete one to go back):")
    assert lines[start + 1] == f"  vae_mnist_conv: {tmp_path / 'runs' / 'vae_mnist_conv.pt'}"
