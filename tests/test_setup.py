"""The two-command set-up: pins agree, the install stamp is keyed on pyproject.toml, CI runs the README command."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = dict(spec.split("==") for spec in specs)
    assert len(pins) == len(specs), "every dependency in pyproject.toml is pinned with =="
    return pins


def test_environment_yml_repeats_the_pyproject_pins():
    text = (ROOT / "environment.yml").read_text()
    env_pins = dict(re.findall(r"^\s+- ([A-Za-z0-9_.\-]+)==(\S+)$", text, re.M))
    assert env_pins == _pyproject_pins()
    assert re.search(r"- python=3\.11$", text, re.M)


def test_torch_trio_pins():
    pins = _pyproject_pins()
    assert (pins["torch"], pins["torchvision"], pins["torchaudio"]) == ("2.9.1", "0.24.1", "2.9.1")


def test_install_stamp_is_keyed_on_pyproject_hash():
    out = subprocess.run(["make", "-n", "-p", "test"], cwd=ROOT, capture_output=True, text=True).stdout
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    assert f"STAMP := .venv/.installed-{digest}" in out or f".venv/.installed-{digest}:" in out


def test_make_skips_install_when_venv_is_up_to_date():
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = ROOT / ".venv" / f".installed-{digest}"
    assert stamp.exists(), "tests run from a venv made by `make`, so its stamp exists"
    for target in ("test", "lab"):
        dry_run = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        assert "pip install" not in dry_run, f"`make {target}` would reinstall although .venv is up to date"


def test_make_installs_when_pyproject_changes(tmp_path):
    # A copy of the Makefile beside a different pyproject.toml has no stamp, so it must install.
    (tmp_path / "Makefile").write_text((ROOT / "Makefile").read_text())
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + "\n# changed\n")
    dry_run = subprocess.run(["make", "-n", "test"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert "pip install -e '.[dev]'" in dry_run and "ipykernel install" in dry_run


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in ci.splitlines() if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))]
    assert commands == ["make test"]
    assert "make test" in (ROOT / "README.md").read_text() and "make lab" in (ROOT / "README.md").read_text()
