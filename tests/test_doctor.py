"""coursekit.doctor and ``python -m coursekit doctor``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from coursekit import __main__ as cli
from coursekit import config, doctor


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
    # COURSEKIT_* variables are unset by the autouse fixture in conftest.py, so the child sees none.
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


def test_generated_datasets_are_listed_as_built_or_not(monkeypatch, tmp_path):
    (tmp_path / "nsynth_mini-tiny-seed0").mkdir()
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path))
    lines = doctor.report()[0]
    assert "  [ok] NSynth-mini notes: built: nsynth_mini-tiny-seed0" in lines
    assert "  [--] techno loops: not built yet; coursekit.data.loops.render_loops() builds it" in lines


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
