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

from coursekit import checkpoints, config
from coursekit.checkpoints import (
    list_pretrained,
    load_checkpoint,
    load_pretrained,
    register_checkpoint,
    save_checkpoint,
    sha256_of,
)

CONFIG = {"in_features": 3, "out_features": 2}
RECIPE = "python -m coursekit train tiny_linear --ship"


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
    with pytest.raises(FileNotFoundError, match=rf"no checkpoint at {path}: .*`python -m coursekit train --list`"):
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


# ----------------------------------------------------------------------------- devices
def missing_devices() -> list[str]:
    """Device strings this machine lacks: ``"cuda"`` without CUDA, else one index past the last GPU; ``"mps"``
    where there is no MPS. Never empty, so the tests below run (and assert) on every machine."""
    cuda = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    return [cuda] + ([] if torch.backends.mps.is_available() else ["mps"])


@pytest.mark.parametrize("device", missing_devices())
def test_missing_device_is_reported_as_a_device_problem_not_corruption(saved, model, device):
    with pytest.raises(ValueError) as caught:
        load_checkpoint(saved, build, map_location=device)
    message = str(caught.value)
    assert "corrupt" not in message and "delete" not in message
    assert f"cannot load {saved} onto map_location={device!r}: this machine has " in message
    assert "The file itself was not read" in message
    assert "map_location='cpu'" in message and "map_location=coursekit.config.get_device()" in message
    loaded, _ = load_checkpoint(saved, build)  # and the file is fine
    assert_same_weights(loaded, model)


def test_cuda_on_a_machine_without_cuda_says_so(saved, monkeypatch):
    # the situation of a student's laptop, simulated so that it is checked on GPU machines too
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match=r"map_location='cuda': this machine has no CUDA device "
                                         r"\(torch\.cuda\.is_available\(\) is False\)"):
        load_checkpoint(saved, build, map_location="cuda")


def test_unknown_device_name_is_not_reported_as_corruption(saved):
    with pytest.raises(ValueError, match=r"map_location='gpu' is not a device name: use 'cpu', 'cuda'") as caught:
        load_checkpoint(saved, build, map_location="gpu")
    assert "corrupt" not in str(caught.value)


def test_torch_device_errors_while_reading_are_not_reported_as_corruption(saved, monkeypatch):
    # map_location=None keeps tensors where they were saved; a file with CUDA tensors (not one that
    # save_checkpoint wrote: it stores them on the CPU) then fails inside torch.load with this message.
    def load(*args, **kwargs):
        raise RuntimeError("Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is "
                           "False. If you are running on a CPU-only machine, please use torch.load with "
                           "map_location=torch.device('cpu') to map your storages to the CPU.")

    monkeypatch.setattr(torch, "load", load)
    expected = r"cannot load .*tiny\.pt onto map_location=None: .*map_location='cpu'"
    with pytest.raises(ValueError, match=expected) as caught:
        load_checkpoint(saved, build, map_location=None)
    assert "corrupt" not in str(caught.value)


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


def test_load_checkpoint_refuses_a_registered_file_whose_hash_differs(ckpt_dir, model, monkeypatch):
    monkeypatch.setattr(config, "repo_root", lambda: ckpt_dir.parent)  # as if ckpt_dir were the repo's checkpoints/
    path = save_checkpoint(ckpt_dir / "tiny.pt", model, CONFIG)
    expected = register_checkpoint("tiny", path, RECIPE, "x")["sha256"]
    save_checkpoint(path, nn.Linear(**CONFIG), CONFIG)  # a valid checkpoint, but not the registered one
    found = sha256_of(path)
    (ckpt_dir / "sub").mkdir()
    for spelling in (path, str(path), ckpt_dir / "sub" / ".." / "tiny.pt"):  # any path that resolves to it
        with pytest.raises(ValueError) as caught:
            load_checkpoint(spelling, build)
        message = str(caught.value)
        assert message.startswith(f"{spelling} does not match the SHA-256 of the shipped checkpoint 'tiny' ")
        assert f"(expected {expected[:12]}..., found {found[:12]}...)" in message
        restore = "restore the shipped file with `git checkout checkpoints/tiny.pt`"
        assert f"rebuild it with `{RECIPE}` (or {restore})" in message


def test_load_checkpoint_loads_a_registered_file_that_matches(ckpt_dir, model):
    path = save_checkpoint(ckpt_dir / "tiny.pt", model, CONFIG)
    register_checkpoint("tiny", path, RECIPE, "x")
    loaded, _ = load_checkpoint(path, build)
    assert_same_weights(loaded, model)


def test_unregistered_files_load_without_a_registry_check(ckpt_dir, tmp_path, model):
    path = save_checkpoint(ckpt_dir / "tiny.pt", model, CONFIG)
    register_checkpoint("tiny", path, RECIPE, "x")
    mine = save_checkpoint(tmp_path / "runs" / "tiny.pt", nn.Linear(**CONFIG), CONFIG)  # a student's own run
    own = save_checkpoint(ckpt_dir / "own.pt", nn.Linear(**CONFIG), CONFIG)  # in the folder, not registered
    for unregistered in (mine, own):
        loaded, _ = load_checkpoint(unregistered, build)
        assert torch.equal(loaded.weight, torch.load(unregistered, weights_only=True)["state_dict"]["weight"])
    (ckpt_dir / "registry.json").write_text("{not json")  # outside the checkpoint folder nobody reads it
    load_checkpoint(mine, build)


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


NOT_CHECKPOINTS = {"registry.json", "README.md", ".gitkeep"}
"""Files in the checkpoint folder that are not checkpoints."""


def registry_problems() -> list[str]:
    """What is wrong between the checkpoint folder and its registry, one line per file or entry."""
    folder, registry = checkpoints.registry_path().parent, list_pretrained()
    registered = {entry["file"]: name for name, entry in registry.items()}
    problems = [
        f"{path.name} is in {folder} but not in registry.json: register it with its recipe, or move it out"
        for path in sorted(folder.iterdir())
        if path.name not in NOT_CHECKPOINTS and path.name not in registered
    ]
    for name, entry in sorted(registry.items()):
        path = folder / entry["file"]
        if not path.is_file():
            problems.append(f"{name}: {entry['file']} is missing; rebuild it with `{entry['recipe']}`")
        elif sha256_of(path) != entry["sha256"]:
            problems.append(f"{name}: {entry['file']} has SHA-256 {sha256_of(path)[:12]}..., "
                            f"registry.json says {entry['sha256'][:12]}...")
        elif path.stat().st_size != entry["size_bytes"]:
            problems.append(f"{name}: {entry['file']} has {path.stat().st_size} bytes, registry.json says "
                            f"{entry['size_bytes']}")
    return problems


def test_registry_problems_names_unregistered_missing_and_modified_files(ckpt_dir, model):
    for name in ("kept", "gone", "changed"):
        register_checkpoint(name, save_checkpoint(ckpt_dir / f"{name}.pt", model, CONFIG), RECIPE, name)
    (ckpt_dir / "README.md").write_text("notes")
    assert registry_problems() == []
    save_checkpoint(ckpt_dir / "stray.pt", model, CONFIG)
    os.remove(ckpt_dir / "gone.pt")
    save_checkpoint(ckpt_dir / "changed.pt", nn.Linear(**CONFIG), CONFIG)
    problems = registry_problems()
    assert [line.split(" ")[0] for line in problems] == ["stray.pt", "changed:", "gone:"]
    assert problems[0] == (f"stray.pt is in {ckpt_dir} but not in registry.json: "
                           "register it with its recipe, or move it out")
    assert problems[2] == f"gone: gone.pt is missing; rebuild it with `{RECIPE}`"


def test_every_shipped_checkpoint_is_registered_and_every_entry_matches_its_file():
    assert checkpoints.registry_path() == config.repo_root() / "checkpoints" / "registry.json"  # the shipped one
    assert checkpoints.registry_path().is_file()
    assert registry_problems() == []
    for name, entry in list_pretrained().items():
        assert entry["recipe"].startswith("python -m coursekit") and name in entry["recipe"].split(), name
        assert entry["description"], name
