"""coursekit.train: the training loop, its history and budgets."""

from __future__ import annotations

import json
import math

import IPython.display
import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from coursekit import train
from coursekit.checkpoints import load_checkpoint
from coursekit.nonfinite import NonFiniteLossError
from coursekit.train import History, evaluate, fit, to_device

TRUE_W = torch.tensor([1.5, -2.0, 0.5])


class Pairs(Dataset):
    """Synthetic regression examples as dicts, the way course loaders yield them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict:
        return {"x": self.x[index], "y": self.y[index]}


def regression(n: int, seed: int, w: torch.Tensor = TRUE_W, noise: float = 0.01) -> Pairs:
    """``y = x @ w + noise`` with ``x`` ``[n, len(w)]``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(w), generator=g)
    return Pairs(x, x @ w + noise * torch.randn(n, generator=g))


def mse_loss(model: nn.Module, batch: dict) -> dict:
    error = model(batch["x"]).squeeze(-1) - batch["y"]
    return {"loss": error.pow(2).mean(), "abs": error.abs().mean()}


def loader(data: Dataset, batch_size: int = 16, seed: int | None = None) -> DataLoader:
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=seed is not None, generator=generator)


def linear(seed: int = 0, n_in: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(n_in, 1)


def sgd(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr)


def quiet_fit(model, train_loader, loss_fn=mse_loss, lr=0.1, **kwargs) -> History:
    kwargs = {"progress": False, "live_plot": False} | kwargs
    return fit(model, train_loader, loss_fn, sgd(model, lr), **kwargs)


# ----------------------------------------------------------------------------- learning and history
def test_fit_reduces_the_loss_and_finds_the_weights():
    model = linear()
    history = quiet_fit(model, loader(regression(256, 0), seed=1), epochs=8)
    losses = history.series("train_loss")
    assert losses[-1] < 0.1 * losses[0]
    torch.testing.assert_close(model.weight.detach().squeeze(0), TRUE_W, atol=0.02, rtol=0)
    assert history.stop_reason == "epochs: ran all 8 epochs"
    assert not history.stopped_early


def test_epoch_means_are_weighted_by_batch_size():
    model, train_data, valid_data = linear(), regression(10, 0), regression(7, 1)
    history = quiet_fit(model, loader(train_data, batch_size=3), lr=0.0, epochs=1,
                        valid_loader=loader(valid_data, batch_size=4))
    with torch.no_grad():
        for prefix, data in (("train", train_data), ("valid", valid_data)):
            error = model(data.x).squeeze(-1) - data.y
            assert history.epochs[0][f"{prefix}_loss"] == pytest.approx(error.pow(2).mean().item(), rel=1e-5)
            assert history.epochs[0][f"{prefix}_abs"] == pytest.approx(error.abs().mean().item(), rel=1e-5)


def test_history_records_steps_time_lr_and_epoch_numbers():
    history = quiet_fit(linear(), loader(regression(20, 0), batch_size=8), epochs=3, lr=0.05)
    assert history.series("epoch") == [1, 2, 3]
    assert history.series("steps") == [3, 6, 9]
    assert history.series("lr") == [0.05, 0.05, 0.05]
    times = history.series("time_s")
    assert 0 < times[0] <= times[1] <= times[2]


def test_scheduler_is_stepped_once_per_epoch():
    model = linear()
    optimizer = sgd(model, 0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(model, loader(regression(16, 0)), mse_loss, optimizer, epochs=3, scheduler=scheduler,
                  progress=False, live_plot=False)
    assert history.series("lr") == pytest.approx([0.1, 0.05, 0.025])


def test_reduce_on_plateau_gets_the_monitored_loss():
    model = linear()
    optimizer = sgd(model, 1e-7)  # too small to move the loss: every epoch after the first is a plateau
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0, eps=0)
    history = fit(model, loader(regression(16, 0)), mse_loss, optimizer, epochs=3, scheduler=scheduler,
                  valid_loader=loader(regression(16, 1)), progress=False, live_plot=False)
    assert history.series("lr") == pytest.approx([1e-7, 1e-7, 5e-8])


def test_validation_runs_in_eval_mode_without_gradients_then_back_to_train():
    modes = []

    def loss_fn(model, batch):
        modes.append((model.training, torch.is_grad_enabled()))
        return mse_loss(model, batch)

    model = linear()
    quiet_fit(model, loader(regression(8, 0), batch_size=8), loss_fn, epochs=1,
              valid_loader=loader(regression(8, 1), batch_size=8))
    assert modes == [(True, True), (False, False)]
    assert model.training


def test_same_seeds_give_identical_histories_and_weights():
    def run():
        model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1))
        torch.manual_seed(5)
        for layer in (model[0], model[2]):
            layer.reset_parameters()
        history = quiet_fit(model, loader(regression(64, 0), seed=3), epochs=3, lr=0.05,
                            valid_loader=loader(regression(16, 1)))
        return history, model

    (first, model_a), (second, model_b) = run(), run()
    strip = [{k: v for k, v in epoch.items() if k != "time_s"} for epoch in first.epochs]
    assert strip == [{k: v for k, v in epoch.items() if k != "time_s"} for epoch in second.epochs]
    assert (first.best_epoch, first.stop_reason) == (second.best_epoch, second.stop_reason)
    assert all(torch.equal(a, b) for a, b in zip(model_a.parameters(), model_b.parameters(), strict=True))


def test_history_series_and_to_dict():
    history = quiet_fit(linear(), loader(regression(16, 0)), epochs=2)
    assert json.loads(json.dumps(history.to_dict())) == {
        "epochs": history.epochs, "best_epoch": 2, "stopped_early": False, "stop_reason": history.stop_reason,
    }
    with pytest.raises(KeyError, match=r"history has no 'valid_loss'; it records \['epoch', 'lr', 'steps'"):
        history.series("valid_loss")


def test_to_device_moves_nested_tensors_and_keeps_containers():
    batch = {"image": torch.zeros(2, 3), "pair": (torch.ones(2), [torch.ones(1), "name"]), "label": 7}
    moved = to_device(batch, "meta")
    assert moved["image"].device.type == "meta" and moved["image"].shape == (2, 3)
    assert isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)
    assert moved["pair"][0].device.type == "meta" and moved["pair"][1][0].device.type == "meta"
    assert moved["pair"][1][1] == "name" and moved["label"] == 7
    assert batch["image"].device.type == "cpu"


def test_tuple_batches_work_and_are_weighted_by_their_first_tensor():
    data = regression(10, 0)
    pairs = DataLoader(list(zip(data.x, data.y, strict=True)), batch_size=4)
    model = linear()
    history = fit(model, pairs, lambda m, b: mse_loss(m, {"x": b[0], "y": b[1]}), sgd(model, 0.0), epochs=1,
                  progress=False, live_plot=False)
    with torch.no_grad():
        expected = (model(data.x).squeeze(-1) - data.y).pow(2).mean().item()
    assert history.epochs[0]["train_loss"] == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- stopping
@pytest.mark.parametrize("with_valid", [True, False])
def test_early_stopping_when_the_loss_cannot_improve(with_valid):
    valid = loader(regression(16, 1)) if with_valid else None
    history = quiet_fit(linear(), loader(regression(16, 0)), lr=0.0, epochs=20, patience=3, valid_loader=valid)
    assert history.stopped_early
    assert history.stop_reason == "patience: no improvement of more than 0.0 for 3 epochs"
    assert len(history.epochs) == 3 + 1
    assert history.best_epoch == 1


def test_min_delta_counts_small_improvements_as_none():
    history = quiet_fit(linear(), loader(regression(64, 0)), lr=1e-4, epochs=20, patience=2, min_delta=10.0)
    losses = history.series("train_loss")
    assert losses[1] < losses[0]  # it did improve, but by less than min_delta
    assert history.stopped_early and len(history.epochs) == 3


def test_max_steps_stops_mid_epoch_at_exactly_that_many_steps():
    model = linear()
    optimizer = sgd(model, 0.01)
    steps = []
    optimizer.register_step_post_hook(lambda *args: steps.append(1))
    history = fit(model, loader(regression(40, 0), batch_size=4), mse_loss, optimizer, epochs=5, max_steps=13,
                  valid_loader=loader(regression(8, 1)), progress=False, live_plot=False)
    assert len(steps) == 13
    assert history.series("steps") == [10, 13]
    assert history.stop_reason == "max_steps: reached 13 steps"
    assert not history.stopped_early
    assert "valid_loss" in history.epochs[-1]  # the partial epoch is still validated


def test_time_budget_stops_training(monkeypatch):
    clock = [1000.0]  # a fake clock that only moves when a step computes its loss, 1/16 s a step (exact in binary)
    monkeypatch.setattr(train.time, "perf_counter", lambda: clock[0])

    def slow_loss(model, batch):
        clock[0] += 0.0625
        return mse_loss(model, batch)

    history = quiet_fit(linear(), loader(regression(40, 0), batch_size=4), slow_loss, epochs=100, time_budget_s=0.25)
    assert len(history.epochs) == 1
    assert history.epochs[0]["steps"] == 4  # the step that reaches 0.25 s is the last: 4 x 1/16 s
    assert history.epochs[0]["time_s"] >= 0.25
    assert history.stop_reason.startswith("time_budget: ")
    assert history.stop_reason.endswith("passed time_budget_s=0.25")


# ----------------------------------------------------------------------------- clipping and checkpoints
def test_gradient_clipping_bounds_the_norm_at_each_step():
    def norms(clip):
        model = linear()
        optimizer = sgd(model, 1e-3)
        seen = []
        optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: seen.append(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()])).item())
        )
        big = regression(32, 0, w=100 * TRUE_W)
        fit(model, loader(big, batch_size=8), mse_loss, optimizer, epochs=1, clip_grad_norm=clip,
            progress=False, live_plot=False)
        return seen

    unclipped, clipped = norms(None), norms(0.5)
    assert len(clipped) == 4 and min(unclipped) > 0.5
    assert clipped == pytest.approx([0.5] * 4, rel=1e-5)


def test_checkpoint_holds_the_best_epochs_weights(tmp_path):
    # y = 2x in training, y = x in validation, weight starting at 0: validation improves while
    # the weight climbs towards 1 and worsens once it passes 1, so the best epoch is in the middle.
    snapshots = []

    def loss_fn(model, batch):
        if not model.training:  # one validation batch per epoch: keep the weights it sees
            snapshots.append(model.weight.detach().clone())
        return mse_loss(model, batch)

    x = torch.linspace(-1, 1, 16).unsqueeze(1)
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    path = tmp_path / "best.pt"
    history = quiet_fit(model, loader(Pairs(x, 2 * x.squeeze(1)), batch_size=16), loss_fn, lr=0.2, epochs=8,
                        valid_loader=loader(Pairs(x, x.squeeze(1)), batch_size=16), checkpoint_path=path,
                        checkpoint_config={"in_features": 1, "out_features": 1, "bias": False})
    weights = [w.item() for w in snapshots]
    closest_to_one = min(range(len(weights)), key=lambda i: abs(weights[i] - 1)) + 1
    assert 1 < closest_to_one < len(weights)
    assert history.best_epoch == closest_to_one
    loaded, ckpt = load_checkpoint(path, lambda cfg: nn.Linear(**cfg))
    assert torch.equal(loaded.weight, snapshots[closest_to_one - 1])
    assert not torch.equal(loaded.weight, model.weight)
    assert ckpt["metrics"] == history.epochs[closest_to_one - 1]


def test_restore_best_leaves_the_best_epochs_weights_in_the_model():
    snapshots = []

    def loss_fn(model, batch):
        if not model.training:
            snapshots.append(model.weight.detach().clone())
        return mse_loss(model, batch)

    x = torch.linspace(-1, 1, 16).unsqueeze(1)
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    history = quiet_fit(model, loader(Pairs(x, 2 * x.squeeze(1)), batch_size=16), loss_fn, lr=0.2, epochs=8,
                        valid_loader=loader(Pairs(x, x.squeeze(1)), batch_size=16), restore_best=True)
    assert history.best_epoch < len(history.epochs)
    assert torch.equal(model.weight, snapshots[history.best_epoch - 1])


def test_checkpoint_path_without_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_path needs checkpoint_config"):
        quiet_fit(linear(), loader(regression(8, 0)), checkpoint_path=tmp_path / "x.pt")


# ----------------------------------------------------------------------------- non-finite losses
def nan_from(step: int, loss_fn=mse_loss):
    """``loss_fn`` whose training loss turns NaN at its ``step``-th training call (from 1), through a log of zero."""
    calls = []

    def loss(model, batch):
        parts = dict(loss_fn(model, batch))
        if model.training:
            calls.append(batch)
            if len(calls) >= step:
                parts["loss"] = parts["loss"] + 0 * torch.log(torch.zeros(()))  # 0 * -inf = nan
        return parts

    return loss


def snapshot_weights(loss_fn, snapshots: list):
    """``loss_fn`` that also keeps the weights each validation pass sees (one batch: once per epoch)."""

    def loss(model, batch):
        if not model.training:
            snapshots.append({key: value.clone() for key, value in model.state_dict().items()})
        return loss_fn(model, batch)

    return loss


def count_steps(optimizer) -> list:
    steps = []
    optimizer.register_step_post_hook(lambda *args: steps.append(1))
    return steps


def all_finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_training_loss_stops_at_that_step_naming_epoch_step_and_causes():
    model = linear()
    optimizer = sgd(model, 0.05)
    steps = count_steps(optimizer)
    # 20 examples in batches of 8: 3 steps per epoch, so training step 8 is epoch 3, step 2
    with pytest.raises(FloatingPointError) as caught:
        fit(model, loader(regression(20, 0), batch_size=8), nan_from(8), optimizer, epochs=10,
            progress=False, live_plot=False)
    err = caught.value
    assert isinstance(err, NonFiniteLossError)
    assert (err.phase, err.epoch, err.step, err.optimizer_step) == ("training", 3, 2, 8) and math.isnan(err.value)
    message = str(err)
    assert message.startswith("the training loss is nan at epoch 3, step 2 (optimizer step 8): training stopped ")
    assert "learning rate too high" in message and "clip_grad_norm" in message
    assert "log of zero or a division by zero in loss_fn" in message
    assert "input data containing NaN or inf" in message
    assert "the batch and the weights are finite, so the NaN came from loss_fn's arithmetic" in message
    assert len(steps) == 7  # the NaN step was not taken
    assert all_finite(model)
    assert len(err.history.epochs) == 2 and err.history.stop_reason.startswith("non_finite: training loss nan")


def test_after_a_nan_the_best_checkpoint_stays_on_disk_and_restore_best_restores_it(tmp_path):
    def run(restore_best, path):
        model = linear()
        snapshots = []
        with pytest.raises(FloatingPointError) as caught:
            quiet_fit(model, loader(regression(20, 0), batch_size=8), snapshot_weights(nan_from(8), snapshots),
                      lr=0.05, epochs=10, valid_loader=loader(regression(8, 1), batch_size=8),
                      checkpoint_path=path, checkpoint_config={"in_features": 3, "out_features": 1},
                      restore_best=restore_best)
        return model, snapshots, caught.value

    path = tmp_path / "best.pt"
    model, snapshots, err = run(False, path)
    assert err.history.best_epoch == 2 and len(snapshots) == 2  # epochs 1 and 2 finished and improved
    loaded, ckpt = load_checkpoint(path, lambda cfg: nn.Linear(**cfg))
    assert all(torch.equal(loaded.state_dict()[key], snapshots[1][key]) for key in snapshots[1])
    assert ckpt["metrics"] == err.history.epochs[1]
    assert f"The best weights so far (epoch 2, valid_loss {err.history.epochs[1]['valid_loss']:.4g}) stay in {path}" \
        in str(err)
    assert not torch.equal(model.weight, snapshots[1]["weight"])  # the model holds the weights of step 7
    assert "pass restore_best=True" in str(err)

    model, snapshots, err = run(True, tmp_path / "again.pt")
    assert all(torch.equal(model.state_dict()[key], snapshots[1][key]) for key in snapshots[1])
    assert "The model was restored to the weights of epoch 2 (restore_best=True)" in str(err)


def test_nan_from_the_first_step_writes_no_checkpoint_and_says_so(tmp_path):
    path = tmp_path / "never.pt"
    with pytest.raises(FloatingPointError, match=r"at epoch 1, step 1 \(optimizer step 1\)") as caught:
        quiet_fit(linear(), loader(regression(16, 0)), nan_from(1), epochs=5, checkpoint_path=path,
                  checkpoint_config={"in_features": 3, "out_features": 1}, restore_best=True)
    assert not path.exists()
    assert f"No checkpoint was written to {path}: no epoch finished with a finite loss." in str(caught.value)
    assert caught.value.history.epochs == [] and caught.value.history.best_epoch is None


def test_nan_in_the_input_data_is_named():
    data = regression(20, 0)
    data.x[13, 1] = float("nan")  # example 13 is in the fourth batch of 4
    with pytest.raises(FloatingPointError) as caught:
        quiet_fit(linear(), loader(data, batch_size=4), epochs=2)
    assert (caught.value.epoch, caught.value.step) == (1, 4)
    assert "the batch itself is not finite: batch['x'] holds 1 NaN" in str(caught.value)


def test_too_high_a_learning_rate_stops_before_the_weights_are_lost():
    model = linear()
    with pytest.raises(FloatingPointError, match=r"the training loss is (inf|nan) at epoch \d+, step \d+") as caught:
        quiet_fit(model, loader(regression(64, 0), batch_size=8), lr=20.0, epochs=50)
    assert "learning rate too high (lower lr" in str(caught.value)
    assert all_finite(model)  # the diverging steps stop before the weights overflow


def test_weights_that_turn_non_finite_with_a_finite_loss_are_caught():
    def sqrt_loss(model, batch):  # sqrt(w^2) at w = 0: the loss is 0, its gradient nan
        return {"loss": torch.sqrt(model.weight.pow(2).sum())}

    model = nn.Linear(3, 1)
    nn.init.zeros_(model.weight)
    with pytest.raises(FloatingPointError) as caught:
        quiet_fit(model, loader(regression(8, 0), batch_size=8), sqrt_loss, epochs=1)
    assert caught.value.phase == "weights"
    assert str(caught.value).startswith("the weights are nan after epoch 1 (optimizer step 1) although every "
                                        "training loss was finite: ")


def test_non_finite_validation_loss_stops_naming_the_epoch():
    def loss_fn(model, batch):
        parts = mse_loss(model, batch)
        if not model.training:
            valid_calls.append(batch)
            if len(valid_calls) == 2:  # the second epoch's validation (one batch)
                parts = {**parts, "loss": parts["loss"] / torch.zeros(())}  # inf
        return parts

    valid_calls = []
    with pytest.raises(FloatingPointError) as caught:
        quiet_fit(linear(), loader(regression(16, 0), batch_size=8), loss_fn, epochs=5,
                  valid_loader=loader(regression(8, 1), batch_size=8))
    err = caught.value
    assert (err.phase, err.epoch, err.step, err.optimizer_step, err.value) == ("validation", 2, None, 4, math.inf)
    assert str(err).startswith("the validation loss is inf at epoch 2 (after optimizer step 4): training stopped")
    assert "bad input data containing NaN or inf (check torch.isfinite(x).all() on the validation batches)" in str(err)
    assert len(err.history.epochs) == 1


# ----------------------------------------------------------------------------- bad input
def test_loss_fn_without_a_loss_key_is_refused():
    with pytest.raises(ValueError, match=r"loss_fn must return a dict with the key 'loss'.*got \['mse'\]"):
        quiet_fit(linear(), loader(regression(8, 0)), lambda m, b: {"mse": mse_loss(m, b)["loss"]})


def test_empty_train_loader_is_refused():
    with pytest.raises(ValueError, match=r"train_loader yielded no batches.*drop_last"):
        quiet_fit(linear(), DataLoader(regression(3, 0), batch_size=4, drop_last=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"epochs must be an integer >= 1"),
        ({"max_steps": 0}, r"max_steps must be an integer >= 1"),
        ({"patience": 2.5}, r"patience must be an integer >= 1"),
        ({"time_budget_s": 0}, r"time_budget_s must be a positive number"),
    ],
)
def test_bad_budgets_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        quiet_fit(linear(), loader(regression(8, 0)), **kwargs)


def test_evaluate_matches_the_full_batch_loss_and_restores_train_mode():
    model, data = linear(), regression(9, 2)
    result = evaluate(model, loader(data, batch_size=4), mse_loss)
    with torch.no_grad():
        expected = (model(data.x).squeeze(-1) - data.y).pow(2).mean().item()
    assert result["valid_loss"] == pytest.approx(expected, rel=1e-5)
    assert model.training


# ----------------------------------------------------------------------------- live plot
class FakeHandle:
    def __init__(self):
        self.updates = []

    def update(self, obj):
        self.updates.append(obj)


@pytest.fixture
def displays(monkeypatch):
    shown = []

    def display(obj, display_id=False):
        shown.append((obj, display_id, FakeHandle()))
        return shown[-1][2]

    monkeypatch.setattr(IPython.display, "display", display)
    plt.close("all")
    return shown


def test_live_plot_auto_does_nothing_outside_a_notebook(displays):
    model = linear()
    fit(model, loader(regression(8, 0)), mse_loss, sgd(model, 0.1), epochs=2, progress=False, live_plot="auto")
    assert displays == []
    assert plt.get_fignums() == []


def test_live_plot_shows_one_display_and_redraws_it_each_epoch(displays):
    model = linear()
    fit(model, loader(regression(8, 0)), mse_loss, sgd(model, 0.1), epochs=3, progress=False, live_plot=True,
        valid_loader=loader(regression(8, 1)))
    assert len(displays) == 1
    image, display_id, handle = displays[0]
    assert display_id is True and image.data.startswith(b"\x89PNG")
    assert len(handle.updates) == 3
    assert all(update.data.startswith(b"\x89PNG") for update in handle.updates)
    assert len({update.data for update in handle.updates}) == 3  # each redraw shows the new epoch
    assert plt.get_fignums() == []


def test_live_plot_rejects_unknown_values():
    with pytest.raises(ValueError, match=r"live_plot must be True, False or 'auto', got 'yes'"):
        quiet_fit(linear(), loader(regression(8, 0)), live_plot="yes")


def test_progress_bar_prints_a_summary_per_epoch(capsys):
    model = linear()
    fit(model, loader(regression(8, 0)), mse_loss, sgd(model, 0.1), epochs=2, live_plot=False)
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.startswith("epoch ") and "train_loss" in line]
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2"]
