"""The command line and the recipe registry: `python -m coursekit train --list | NAME [--ship]`, where runs
are written (a student's never touch checkpoints/), and `load_or_train`, the lessons' one load-or-train pattern."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from coursekit import checkpoints, config
from coursekit.__main__ import main
from coursekit.recipes import registry
from coursekit.recipes.registry import RECIPES, load_or_train, register_recipe, run_path, run_recipe


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coursekit", *args], capture_output=True, text=True, timeout=120)


def test_cli_lists_every_shipped_recipe_with_its_description():
    result = run_cli("train", "--list")
    assert result.returncode == 0, result.stderr
    names = [line.split("  ")[0] for line in result.stdout.splitlines()]
    assert names == sorted(RECIPES) and set(names) >= set(checkpoints.list_pretrained())
    assert "vae_mnist_conv  convolutional VAE on MNIST, latent size 16" in result.stdout


def test_cli_unknown_recipe_names_the_known_ones():
    result = run_cli("train", "nope")
    assert result.returncode == 2
    assert f"unknown recipe 'nope'; known recipes: {', '.join(sorted(RECIPES))}" in result.stderr


def test_every_registry_entry_names_the_ship_command_of_a_recipe():
    for name, entry in checkpoints.list_pretrained().items():
        assert entry["recipe"] == f"python -m coursekit train {name} --ship", name
        assert name in RECIPES
        assert entry["description"] == RECIPES[name].description, name


@pytest.fixture
def tiny_recipe(monkeypatch, tmp_path: Path):
    """A registered recipe `tiny` (a 2x1 linear layer), with the data and checkpoint folders in tmp_path."""
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COURSEKIT_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setattr(registry, "RECIPES", {})
    calls = []

    @register_recipe("tiny", "a tiny linear model")
    def tiny(path: Path, ship: bool) -> None:
        calls.append(ship)
        model = nn.Linear(2, 1)
        with torch.no_grad():
            model.weight.fill_(float(len(calls)))
        checkpoints.save_checkpoint(path, model, {"in_features": 2, "out_features": 1}, {"run": len(calls)})

    return calls


def build(cfg: dict) -> nn.Module:
    return nn.Linear(**cfg)


def test_a_students_run_goes_to_the_runs_folder_and_leaves_checkpoints_alone(tiny_recipe, tmp_path):
    path = run_recipe("tiny")
    assert path == run_path("tiny") == tmp_path / "data" / "runs" / "tiny.pt"
    assert path.is_file() and tiny_recipe == [False]
    assert not (tmp_path / "checkpoints").exists()


def test_ship_writes_checkpoints_and_the_registry(tiny_recipe, tmp_path):
    path = run_recipe("tiny", ship=True)
    assert path == tmp_path / "checkpoints" / "tiny.pt" and tiny_recipe == [True]
    entry = json.loads((tmp_path / "checkpoints" / "registry.json").read_text())["tiny"]
    assert entry["sha256"] == checkpoints.sha256_of(path)
    assert entry["recipe"] == "python -m coursekit train tiny --ship"
    assert entry["description"] == "a tiny linear model"
    assert not run_path("tiny").exists()


def test_load_or_train_prefers_the_students_run_and_says_so(tiny_recipe, capsys):
    run_recipe("tiny", ship=True)  # the shipped checkpoint: weight 1
    model, ckpt = load_or_train("tiny", build)
    assert model.weight[0, 0].item() == 1.0 and "the shipped checkpoint" in capsys.readouterr().out
    model, ckpt = load_or_train("tiny", build, train=True)  # the student's run: weight 2
    assert model.weight[0, 0].item() == 2.0 and ckpt["metrics"]["run"] == 2
    assert "your own run" in capsys.readouterr().out
    model, _ = load_or_train("tiny", build)  # later sessions load the run without training again
    assert model.weight[0, 0].item() == 2.0 and tiny_recipe == [True, False]
    run_path("tiny").unlink()
    assert load_or_train("tiny", build, verbose=False)[0].weight[0, 0].item() == 1.0


def test_cli_runs_a_recipe_into_the_runs_folder(tiny_recipe, capsys, tmp_path):
    assert main(["train", "tiny"]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'data' / 'runs' / 'tiny.pt'}\n"
    assert main(["train", "tiny", "--ship"]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'checkpoints' / 'tiny.pt'}\n"
    with pytest.raises(SystemExit):
        main(["train"])
    assert "name a recipe to run; known recipes: tiny" in capsys.readouterr().err


def test_register_recipe_refuses_a_taken_name_and_an_empty_description(tiny_recipe):
    with pytest.raises(ValueError, match="a recipe named 'tiny' is already registered"):
        register_recipe("tiny", "again")(lambda path, ship: None)
    with pytest.raises(ValueError, match="needs a one-line description"):
        register_recipe("other", " ")
    with pytest.raises(KeyError, match="unknown recipe 'nope'; known recipes: tiny"):
        run_recipe("nope")


def test_runs_live_under_the_git_ignored_data_folder():
    assert run_path("x").parent == config.data_dir() / "runs"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(run_path("x"))], cwd=config.repo_root())
    assert ignored.returncode == 0, "the runs folder must be git-ignored"
