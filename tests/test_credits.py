"""The repository states its licence and credits every data source it reads (issue 14)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from coursekit.doctor import SOURCES

ROOT = Path(__file__).resolve().parent.parent


def test_licence_file_matches_the_package_metadata():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    first_line = (ROOT / "LICENSE").read_text().splitlines()[0]
    assert first_line == f"{declared} License", f"LICENSE starts {first_line!r}; pyproject.toml declares {declared!r}"


def test_every_shipped_data_source_is_credited():
    credits = (ROOT / "CREDITS.md").read_text()
    missing = [
        f"{source.package}/{source.relative_path}"
        for source in SOURCES
        if source.package not in credits or Path(source.relative_path).name.split(".")[0] not in credits
    ]
    assert not missing, f"CREDITS.md does not credit {missing}; add who made each and its licence"


def test_readme_links_licence_and_credits():
    readme = (ROOT / "README.md").read_text()
    assert "(LICENSE)" in readme and "(CREDITS.md)" in readme
