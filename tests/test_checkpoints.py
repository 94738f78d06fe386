"""coursekit.checkpoints: save, load, errors, and the registry of shipped checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime

import pytest
import torch
from torch import nn

from coursekit import checkpoints
from coursekit.checkpoints import (
    list_pretrained,
    load_checkpoint,
    load_pretrained,
    register_checkpoint,
    save_checkpoint,
    sha256_of,
)

CONFIG = {"in_features": 3, "out_features": 2}
RECIPE = "python -m coursekit.train tiny_linear"


def build(config: dict) -> nn.Module:
    return nn.Linear(**config)


@pytest.fixture
def model(rng) -> nn.Module:
    layer = nn.Linear(**CONFIG)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(2, 3, generator=rng))
        layer.bias.copy_(torch.randn(2, generator=rng))
    return layer


@pytest.fixture
def saved(tmp_path, model):
    return save_checkpoint(tmp_path / "tiny.pt", model, CONFIG, {"valid_loss": 1.25, "epoch": 3})


@pytest.fixture
def ckpt_dir(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    monkeypatch.setenv("COURSEKIT_CHECKPOINTS", str(folder))
    return folder


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ----------------------------------------------------------------------------- save and load
def test_round_trip_restores_weights_config_and_metrics(saved, model):
    loaded, ckpt = load_checkpoint(saved, build)
    assert_same_weights(loaded, model)
    assert loaded is not model
    assert not loaded.training
    assert ckpt["config"] == CONFIG
    assert ckpt["metrics"] == {"valid_loss": 1.25, "epoch": 3}
    assert ckpt["format"] == 1
    assert ckpt["torch"] == torch.__version__
    assert abs((datetime.now().astimezone() - datetime.fromisoformat(ckpt["created"])).total_seconds()) < 60


def test_file_holds_exactly_the_documented_keys(saved):
    raw = torch.load(saved, weights_only=True)
    assert set(raw) == {"format", "state_dict", "config", "metrics", "created", "torch"}


def test_load_without_build_returns_only_the_dict(saved, model):
    loaded, ckpt = load_checkpoint(saved)
    assert loaded is None
    assert torch.equal(ckpt["state_dict"]["weight"], model.weight.detach())


def test_config_dataclass_is_stored_as_a_dict(tmp_path, model):
    @dataclass
    class LinearConfig:
        in_features: int = 3  # inputs
        out_features: int = 2  # outputs

    path = save_checkpoint(tmp_path / "dc.pt", model, LinearConfig())
    _, ckpt = load_checkpoint(path)
    assert ckpt["config"] == CONFIG
    assert ckpt["metrics"] == {}


def test_config_that_json_cannot_store_names_the_key(tmp_path, model):
    with pytest.raises(TypeError, match=r"config\['layers'\]\[1\] is a Tensor, which JSON cannot store.*float\(x\)"):
        save_checkpoint(tmp_path / "bad.pt", model, {"layers": [4, torch.tensor(2)]})
    assert list(tmp_path.iterdir()) == []


def test_metrics_that_json_cannot_store_names_the_key(tmp_path, model):
    with pytest.raises(TypeError, match=r"metrics\['loss'\] is a Tensor"):
        save_checkpoint(tmp_path / "bad.pt", model, CONFIG, {"loss": torch.tensor(1.0)})


def test_save_leaves_no_temporary_file(saved):
    assert [p.name for p in saved.parent.iterdir()] == ["tiny.pt"]


def test_interrupted_save_leaves_the_previous_file_intact(saved, model, monkeypatch):
    before = saved.read_bytes()

    def crash(obj, file):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(saved, model, CONFIG)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == ["tiny.pt"]


def test_missing_file_names_path_and_how_to_make_it(tmp_path):
    path = tmp_path / "nothing.pt"
    with pytest.raises(FileNotFoundError, match=rf"no checkpoint at {path}: .*`python -m coursekit.train --list`"):
        load_checkpoint(path, build)


def test_random_bytes_are_reported_as_corrupt(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).byte().numpy())
    with pytest.raises(ValueError, match=rf"{path} is corrupt.*: delete it, then"):
        load_checkpoint(path, build)


def test_truncated_checkpoint_is_reported_as_corrupt(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"tiny.pt is corrupt or truncated: delete it, then .*recipe"):
        load_checkpoint(saved, build)


def test_plain_torch_file_is_not_a_coursekit_checkpoint(tmp_path, model):
    path = tmp_path / "plain.pt"
    torch.save({"weights": model.state_dict()}, path)
    with pytest.raises(ValueError, match=r"not a coursekit checkpoint: it lacks \['format', 'state_dict', 'config'"):
        load_checkpoint(path, build)


def test_pickled_model_is_not_a_coursekit_checkpoint(tmp_path, model):
    path = tmp_path / "pickled.pt"
    torch.save(model, path)
    with pytest.raises(ValueError, match=r"not a coursekit checkpoint: it stores Python objects.*torch.save\(model\)"):
        load_checkpoint(path, build)


def test_unknown_format_version_is_refused(saved):
    raw = torch.load(saved, weights_only=True)
    torch.save(raw | {"format": 99}, saved)
    with pytest.raises(ValueError, match=r"checkpoint format 99; this coursekit reads 1"):
        load_checkpoint(saved, build)


def test_wrong_shapes_are_named(saved):
    with pytest.raises(ValueError, match=r"shape mismatch bias: checkpoint \[2\] vs model \[5\]; "
                       r"weight: checkpoint \[2, 3\] vs model \[5, 3\]"):
        load_checkpoint(saved, lambda config: nn.Linear(3, 5))


def test_wrong_keys_are_named(saved):
    expected = r"missing keys \['0.bias', '0.weight'\], unexpected keys \['bias', 'weight'\]"
    with pytest.raises(ValueError, match=expected):
        load_checkpoint(saved, lambda config: nn.Sequential(nn.Linear(**config)))


# ----------------------------------------------------------------------------- registry
def test_sha256_of_matches_the_known_digest(tmp_path):
    path = tmp_path / "abc.bin"
    path.write_bytes(b"abc")
    assert sha256_of(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_register_writes_size_hash_and_recipe(ckpt_dir, model):
    path = save_checkpoint(ckpt_dir / "tiny.pt", model, CONFIG)
    entry = register_checkpoint("tiny", path, RECIPE, "a 3-to-2 linear layer")
    expected = {
        "file": "tiny.pt",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "recipe": RECIPE,
        "size_bytes": len(path.read_bytes()),
        "description": "a 3-to-2 linear layer",
    }
    assert entry == expected
    assert json.loads((ckpt_dir / "registry.json").read_text()) == {"tiny": expected}
    assert list_pretrained() == {"tiny": expected}


def test_register_keeps_other_entries(ckpt_dir, model):
    for name in ("one", "two"):
        register_checkpoint(name, save_checkpoint(ckpt_dir / f"{name}.pt", model, CONFIG), RECIPE, name)
    assert sorted(list_pretrained()) == ["one", "two"]


def test_register_refuses_a_file_outside_the_checkpoint_folder(ckpt_dir, saved):
    with pytest.raises(ValueError, match=rf"is not in the checkpoint folder {ckpt_dir}: save the checkpoint there"):
        register_checkpoint("tiny", saved, RECIPE, "x")


def test_load_pretrained_verifies_and_loads_a_good_file(ckpt_dir, model):
    register_checkpoint("tiny", save_checkpoint(ckpt_dir / "tiny.pt", model, CONFIG), RECIPE, "x")
    loaded, ckpt = load_pretrained("tiny", build)
    assert_same_weights(loaded, model)
    assert ckpt["config"] == CONFIG


def test_load_pretrained_refuses_a_modified_file(ckpt_dir, model):
    path = save_checkpoint(ckpt_dir / "tiny.pt", model, CONFIG)
    register_checkpoint("tiny", path, RECIPE, "x")
    save_checkpoint(path, nn.Linear(**CONFIG), CONFIG)  # a valid checkpoint, but not the registered one
    with pytest.raises(ValueError, match=rf"modified or corrupted; delete it, then rebuild it with `{RECIPE}`"):
        load_pretrained("tiny", build)


def test_load_pretrained_unknown_name_lists_known_names(ckpt_dir, model):
    for name in ("vae_b", "vae_a"):
        register_checkpoint(name, save_checkpoint(ckpt_dir / f"{name}.pt", model, CONFIG), RECIPE, name)
    with pytest.raises(ValueError, match=r"no pretrained checkpoint named 'vae_c'; known names: vae_a, vae_b\."):
        load_pretrained("vae_c", build)


def test_load_pretrained_with_empty_registry_says_none(ckpt_dir):
    with pytest.raises(ValueError, match=r"known names: none yet"):
        load_pretrained("anything", build)


def test_missing_registered_file_names_its_recipe(ckpt_dir, model):
    path = save_checkpoint(ckpt_dir / "tiny.pt", model, CONFIG)
    register_checkpoint("tiny", path, RECIPE, "x")
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=rf"'tiny' is missing .*rebuild it with `{RECIPE}`"):
        load_pretrained("tiny", build)
    with pytest.raises(FileNotFoundError, match=rf"rebuild it with `{RECIPE}` \(or restore the shipped file"):
        load_checkpoint(path, build)


def test_invalid_registry_json_is_reported(ckpt_dir):
    (ckpt_dir / "registry.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"registry.json is not valid JSON .*git checkout"):
        list_pretrained()


def test_shipped_registry_is_valid_and_every_entry_matches_its_file():
    registry = list_pretrained()
    assert checkpoints.registry_path().is_file()
    assert isinstance(registry, dict)
    for name, entry in registry.items():
        path = checkpoints.registry_path().parent / entry["file"]
        assert sha256_of(path) == entry["sha256"], name
        assert path.stat().st_size == entry["size_bytes"], name
        assert entry["recipe"].startswith("python -m coursekit.train "), name
        assert entry["description"], name
