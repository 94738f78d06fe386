"""`make lab` opens on the lesson map and does not ask about news (issue 14)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from jupyterlab.commands import get_app_dir
from jupyterlab_server.settings_utils import get_settings

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = ROOT / "tools" / "jupyterlab" / "overrides.json"
SCHEMAS = Path(get_app_dir()) / "schemas"


def _resolved_defaults(tmp_path: Path, plugin: str) -> tuple[dict, dict]:
    """The plugin's schema defaults as JupyterLab resolves them with our overrides, and without."""
    settings = tmp_path / "settings"
    settings.mkdir(exist_ok=True)
    shutil.copy(OVERRIDES, settings / "overrides.json")
    ours, _ = get_settings(str(settings), str(SCHEMAS), str(tmp_path / "user"), plugin)
    stock, _ = get_settings(str(tmp_path / "none"), str(SCHEMAS), str(tmp_path / "user"), plugin, overrides={})
    return ours["schema"]["properties"], stock["schema"]["properties"]


def test_overrides_name_settings_that_exist(tmp_path):
    for plugin, values in json.loads(OVERRIDES.read_text()).items():
        _, stock = _resolved_defaults(tmp_path, plugin)
        unknown = set(values) - set(stock)
        assert not unknown, f"{plugin} has no settings {unknown}: JupyterLab would ignore them"


def test_news_are_never_fetched_and_markdown_opens_rendered(tmp_path):
    ours, stock = _resolved_defaults(tmp_path, "@jupyterlab/apputils-extension:notification")
    assert stock["fetchNews"]["default"] != "false"  # JupyterLab's own default asks the student
    assert ours["fetchNews"]["default"] == "false" and ours["checkForUpdates"]["default"] is False
    ours, _ = _resolved_defaults(tmp_path, "@jupyterlab/docmanager-extension:plugin")
    assert ours["defaultViewers"]["default"]["markdown"] == "Markdown Preview"


def test_make_lab_installs_the_overrides_where_jupyterlab_reads_them_and_opens_the_map():
    makefile = (ROOT / "Makefile").read_text()
    settings_dir = re.search(r"^LAB_SETTINGS := \$\(VENV\)/(\S+)$", makefile, re.M).group(1)
    assert Path(sys.prefix, settings_dir) == Path(get_app_dir()) / "settings"  # make lab runs .venv's jupyter
    assert "cp tools/jupyterlab/overrides.json $(LAB_SETTINGS)/overrides.json" in makefile
    assert "--LabApp.default_url=/lab/tree/lessons/README.md" in makefile


def test_lesson_map_links_every_lesson():
    lesson_map = (ROOT / "lessons" / "README.md").read_text()
    missing = [p.name for p in (ROOT / "lessons").glob("*.ipynb") if f"]({p.name})" not in lesson_map]
    assert not missing, f"lessons/README.md does not link {missing}"
