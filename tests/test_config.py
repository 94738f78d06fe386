"""coursekit.config: FAST mode, device choice, seeding and folders."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit import config

NO_ACCELERATOR = not torch.cuda.is_available() and not torch.backends.mps.is_available()


# ----------------------------------------------------------------------------- is_fast and pick
@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " 1 "])
def test_is_fast_true_for_truthy_values(monkeypatch, value):
    monkeypatch.setenv("COURSEKIT_FAST", value)
    assert config.is_fast() is True


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_is_fast_false_for_falsy_values(monkeypatch, value):
    monkeypatch.setenv("COURSEKIT_FAST", value)
    assert config.is_fast() is False


def test_is_fast_false_when_unset():
    assert config.is_fast() is False


def test_is_fast_rereads_the_variable_on_each_call(monkeypatch):
    monkeypatch.setenv("COURSEKIT_FAST", "1")
    assert config.is_fast() is True
    monkeypatch.setenv("COURSEKIT_FAST", "0")
    assert config.is_fast() is False


def test_is_fast_rejects_unknown_value_naming_variable_and_fix(monkeypatch):
    monkeypatch.setenv("COURSEKIT_FAST", "maybe")
    with pytest.raises(ValueError, match=r"COURSEKIT_FAST='maybe' is not understood: set it to 1 .* or 0"):
        config.is_fast()


def test_pick_returns_fast_value_in_fast_mode(monkeypatch):
    monkeypatch.setenv("COURSEKIT_FAST", "1")
    assert config.pick(full=2000, fast=20) == 20


def test_pick_returns_full_value_otherwise():
    assert config.pick(full=2000, fast=20) == 2000


def test_pick_propagates_bad_fast_value(monkeypatch):
    monkeypatch.setenv("COURSEKIT_FAST", "2")
    with pytest.raises(ValueError, match="COURSEKIT_FAST='2'"):
        config.pick(full=1, fast=0)


# ----------------------------------------------------------------------------- get_device
def test_get_device_honours_cpu_request(monkeypatch):
    monkeypatch.setenv("COURSEKIT_DEVICE", "cpu")
    assert config.get_device() == torch.device("cpu")


def test_get_device_rejects_unknown_name_and_lists_valid_ones(monkeypatch):
    monkeypatch.setenv("COURSEKIT_DEVICE", "gpu0")
    with pytest.raises(ValueError, match=r"COURSEKIT_DEVICE='gpu0' is not a device name: use cpu, cuda, cuda:N or mps"):
        config.get_device()


def test_get_device_rejects_a_torch_device_coursekit_does_not_support(monkeypatch):
    monkeypatch.setenv("COURSEKIT_DEVICE", "meta")
    with pytest.raises(ValueError, match=r"COURSEKIT_DEVICE='meta': coursekit supports cpu, cuda and mps"):
        config.get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a cuda device")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_get_device_rejects_cuda_on_a_machine_without_gpu(monkeypatch, name):
    monkeypatch.setenv("COURSEKIT_DEVICE", name)
    with pytest.raises(ValueError, match=rf"COURSEKIT_DEVICE='{name}' but this machine has no CUDA device .*: unset"):
        config.get_device()


@pytest.mark.skipif(not NO_ACCELERATOR, reason="this machine has an accelerator")
def test_get_device_defaults_to_cpu_without_accelerator():
    assert config.get_device() == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a cuda device")
def test_get_device_defaults_to_cuda_when_available():
    assert config.get_device() == torch.device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a cuda device")
def test_get_device_rejects_cuda_index_beyond_device_count(monkeypatch):
    count = torch.cuda.device_count()
    monkeypatch.setenv("COURSEKIT_DEVICE", f"cuda:{count}")
    with pytest.raises(ValueError, match=rf"this machine has {count} CUDA devices? \(cuda:0 to cuda:{count - 1}\)"):
        config.get_device()


# ----------------------------------------------------------------------------- seed_everything
def test_seed_everything_seeds_python_numpy_and_torch_global_generators():
    config.seed_everything(7)
    assert random.random() == random.Random(7).random()
    assert np.random.rand() == np.random.RandomState(7).rand()
    assert torch.equal(torch.rand(5), torch.rand(5, generator=torch.Generator().manual_seed(7)))


def test_seed_everything_returns_a_generator_seeded_with_seed():
    generator = config.seed_everything(11)
    assert generator.initial_seed() == 11
    assert torch.equal(torch.rand(5, generator=generator), torch.rand(5, generator=torch.Generator().manual_seed(11)))


def test_seed_everything_accepts_numpy_integers_and_seeds_beyond_32_bits():
    assert config.seed_everything(np.int64(5)).initial_seed() == 5
    big = 2**32 + 5
    config.seed_everything(big)
    assert np.random.rand() == np.random.RandomState(5).rand()


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_seed_everything_rejects_non_natural_seeds(seed):
    with pytest.raises(ValueError, match=re.escape(f"seed must be a non-negative integer, got {seed!r}")):
        config.seed_everything(seed)


# ----------------------------------------------------------------------------- folders
def test_repo_root_is_the_folder_holding_pyproject_and_the_package():
    root = config.repo_root()
    assert (root / "pyproject.toml").is_file()
    assert root == Path(config.__file__).resolve().parent.parent


def test_repo_root_falls_back_to_cwd_when_installed_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "__file__", str(tmp_path / "site-packages" / "coursekit" / "config.py"))
    monkeypatch.chdir(tmp_path)
    assert config.repo_root() == tmp_path


def test_data_dir_defaults_to_data_under_repo_root():
    assert config.data_dir() == config.repo_root() / "data"


def test_data_dir_follows_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_DATA", str(tmp_path / "my_data"))
    assert config.data_dir() == tmp_path / "my_data"
    assert not (tmp_path / "my_data").exists()


def test_data_dir_expands_home(monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA", "~/coursekit_data")
    assert config.data_dir() == Path.home() / "coursekit_data"


def test_checkpoint_dir_defaults_to_checkpoints_under_repo_root():
    assert config.checkpoint_dir() == config.repo_root() / "checkpoints"


def test_checkpoint_dir_follows_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_CHECKPOINTS", str(tmp_path / "ckpt"))
    assert config.checkpoint_dir() == tmp_path / "ckpt"


def test_checkpoint_dir_expands_home(monkeypatch):
    monkeypatch.setenv("COURSEKIT_CHECKPOINTS", "~/ckpt")
    assert config.checkpoint_dir() == Path.home() / "ckpt"


# ----------------------------------------------------------------------------- FAST read at import
def run_python(code: str, fast: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEKIT_")} | {"COURSEKIT_FAST": fast}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_importing_config_with_a_bad_fast_value_works_and_fast_then_raises_clearly():
    code = """
import os
import coursekit.config as config
for use in (lambda: config.FAST, lambda: config.pick(full=1, fast=0)):
    try:
        use()
    except ValueError as err:
        print("ValueError:", err)
os.environ["COURSEKIT_FAST"] = "1"
print("pick after the fix:", config.pick(full=1, fast=0))
try:
    from coursekit.config import FAST
except ValueError as err:
    print("from-import ValueError:", err)
"""
    result = run_python(code, "maybe")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    understood = (
        "COURSEKIT_FAST='maybe' is not understood: set it to 1 for FAST mode or 0 (or unset it) for student mode."
    )
    assert lines[0] == (
        f"ValueError: {understood} (config.FAST was read when coursekit.config was imported: "
        "restart Python, or the notebook's kernel, after fixing it.)"
    )
    assert lines[1] == f"ValueError: {understood}"
    assert lines[2] == "pick after the fix: 0"
    assert lines[3].startswith(f"from-import ValueError: {understood}")


def test_fast_is_the_mode_at_import_time():
    code = "import os, coursekit.config as c; os.environ['COURSEKIT_FAST'] = '0'; print(c.FAST, c.is_fast())"
    assert run_python(code, "1").stdout.split() == ["True", "False"]
    assert run_python(code, "0").stdout.split() == ["False", "False"]


def test_config_from_dict_round_trips_and_names_unknown_fields():
    from dataclasses import dataclass

    from coursekit.config import config_from_dict

    @dataclass
    class Tiny:
        a: int = 1
        b: str = "x"

    assert config_from_dict(Tiny, {"a": 3}) == Tiny(3, "x")
    with pytest.raises(ValueError, match=r"Tiny has no field\(s\) \['c'\]: its fields are \['a', 'b'\]"):
        config_from_dict(Tiny, {"c": 1})
    with pytest.raises(TypeError, match="needs a dataclass type"):
        config_from_dict(dict, {})


def test_device_of_finds_the_module_behind_a_bound_method():
    import torch

    from coursekit.config import device_of

    on_meta = torch.nn.Linear(2, 2, device="meta")
    assert device_of(on_meta) == device_of(on_meta.forward) == torch.device("meta")
    assert device_of(lambda z: z) == device_of(torch.nn.ReLU()) == torch.device("cpu")


def test_as_config_accepts_none_a_dict_or_the_config_and_names_anything_else():
    from dataclasses import dataclass

    from coursekit.config import as_config

    @dataclass
    class Tiny:
        a: int = 1

    assert as_config(Tiny, None) == Tiny() and as_config(Tiny, {"a": 2}) == Tiny(2)
    given = Tiny(5)
    assert as_config(Tiny, given) is given
    with pytest.raises(TypeError, match="config must be a Tiny or a dict of its fields, got list"):
        as_config(Tiny, [1])
