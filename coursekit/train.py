"""One small training loop for every lesson.

``fit`` trains any model whose loss is written as ``loss_fn(model, batch) -> {"loss": ..., parts}``;
it shows a progress bar and, in a notebook, a loss plot that updates in place; it keeps a
per-epoch :class:`History`, stops early, clips gradients, keeps a budget of steps or seconds and
saves the best weights. It never reads FAST mode: lessons shrink data and budgets with
``config.pick`` instead.

The recipes that rebuild the shipped checkpoints with it live in :mod:`coursekit.recipes`.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import io
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from coursekit.checkpoints import save_checkpoint
from coursekit.history import History
from coursekit.nonfinite import NonFiniteFound, check_weights, non_finite_error, training_diagnosis

LossFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor in ``batch`` (a tensor, or dicts, tuples and lists of them) to ``device``.

    Other values (labels as ints, file names) are returned unchanged.

    Example: ``to_device({"image": x, "label": y}, "cuda")``.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def fit(
    model: nn.Module,
    train_loader: Iterable,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    valid_loader: Iterable | None = None,
    epochs: int = 10,
    max_steps: int | None = None,
    time_budget_s: float | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    clip_grad_norm: float | None = None,
    device: torch.device | str | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_config: Any = None,
    live_plot: bool | str = "auto",
    progress: bool = True,
    scheduler: Any = None,
    restore_best: bool = False,
) -> History:
    """Train ``model`` for up to ``epochs`` epochs and return the :class:`History`.

    Args:
        model: any ``nn.Module``; moved to ``device`` when one is given.
        train_loader: yields batches, e.g. ``{"image": Tensor [batch, 1, 28, 28], "label": ...}``.
        loss_fn: ``loss_fn(model, batch) -> {"loss": scalar Tensor, "recon": ..., "kl": ...}``;
            ``"loss"`` is minimised, every entry is averaged and recorded.
        optimizer: built on ``model.parameters()``.
        valid_loader: evaluated after each epoch under ``torch.no_grad()`` and ``model.eval()``.
        epochs: most epochs to run.
        max_steps: stop after this many optimizer steps, even mid-epoch (None: no limit).
        time_budget_s: stop after the step that passes this many seconds (None: no limit).
        patience: stop after this many epochs without improvement of the monitored loss
            (``valid_loss``, or ``train_loss`` without ``valid_loader``); None never stops early.
        min_delta: an epoch improves when its loss is below the best so far minus ``min_delta``.
        clip_grad_norm: clip the global gradient norm to this value before each step (None: no clipping).
        device: where to train (None: where the model already is).
        checkpoint_path: save the weights of each improving epoch here (so the file holds the best
            epoch), with ``checkpoint_config`` and that epoch's dict as metrics. The model itself
            keeps the last epoch's weights.
        checkpoint_config: the config that builds the model (dict or config dataclass); required
            with ``checkpoint_path``.
        live_plot: a loss plot redrawn in place each epoch: "auto" shows it only inside a Jupyter
            kernel, True always (through IPython's display), False never.
        progress: show a tqdm progress bar per epoch with the running loss.
        scheduler: a learning-rate scheduler stepped once per epoch (``ReduceLROnPlateau`` gets
            the monitored loss).
        restore_best: at the end, load the weights of the best epoch back into ``model`` (kept in
            memory on the CPU), instead of leaving the last epoch's; also done before raising
            :class:`~coursekit.nonfinite.NonFiniteLossError`.

    Returns:
        The :class:`History`; ``stop_reason`` says why training ended.

    Raises:
        coursekit.nonfinite.NonFiniteLossError: (a ``FloatingPointError``) at the first training step whose loss is NaN
            or inf, before that step updates the weights; at the first epoch whose validation loss
            is; or after an epoch that left non-finite weights. It names the epoch and step and the
            usual causes (learning rate too high, a log of zero or division by zero in ``loss_fn``,
            NaN or inf in the data). Whatever was saved stays: ``checkpoint_path`` keeps the best
            finite epoch's weights (it is not written when no epoch finished), and with
            ``restore_best=True`` the model gets them back before the error is raised; otherwise it
            keeps its last weights. ``err.history`` holds the finished epochs.

    Example::

        history = fit(model, train_loader, vae_loss, torch.optim.Adam(model.parameters(), lr=1e-3),
                      valid_loader=valid_loader, epochs=config.pick(full=30, fast=1), patience=3)

    Lesson: lessons/02_vae_mnist.ipynb
    """
    _check_fit_arguments(epochs, max_steps, time_budget_s, patience, checkpoint_path, checkpoint_config, live_plot)
    if device is not None:
        model.to(device)
    device = device if device is not None else _model_device(model)
    budget = _Budget(max_steps, time_budget_s)
    history = History()
    plot = _LivePlot() if _wants_live_plot(live_plot) else None
    best, best_state = math.inf, None
    for epoch in range(1, epochs + 1):
        try:
            with tqdm(train_loader, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False) as bar:
                record = {"epoch": epoch} | _train_epoch(model, bar, loss_fn, optimizer, clip_grad_norm, device,
                                                         budget)
            check_weights(model)
            if valid_loader is not None:
                record |= evaluate(model, valid_loader, loss_fn, device=device)
                if not math.isfinite(record["valid_loss"]):
                    raise NonFiniteFound("validation", record["valid_loss"])
        except NonFiniteFound as found:
            if best_state is not None:
                model.load_state_dict(best_state)
            monitored_key = "valid_loss" if valid_loader is not None else "train_loss"
            raise non_finite_error(found, epoch, budget.steps, history, monitored_key, checkpoint_path,
                                    restored=best_state is not None) from None
        record |= {"steps": budget.steps, "time_s": budget.elapsed_s(), "lr": optimizer.param_groups[0]["lr"]}
        history.epochs.append(record)
        monitored = record["valid_loss" if valid_loader is not None else "train_loss"]
        if monitored < best - min_delta:
            best, history.best_epoch = monitored, epoch
            if checkpoint_path is not None:
                save_checkpoint(checkpoint_path, model, checkpoint_config, metrics=record)
            if restore_best:
                best_state = {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}
        _step_scheduler(scheduler, monitored)
        if plot is not None:
            plot.update(history)
        if progress:
            tqdm.write(_summary(record))
        if budget.reason():
            history.stop_reason = budget.reason()
            break
        if patience is not None and epoch - (history.best_epoch or 0) >= patience:
            history.stopped_early = True
            history.stop_reason = f"patience: no improvement of more than {min_delta} for {patience} epochs"
            break
    else:
        history.stop_reason = f"epochs: ran all {epochs} epochs"
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def _check_fit_arguments(epochs, max_steps, time_budget_s, patience, checkpoint_path, checkpoint_config, live_plot):
    for name, value, lowest in (("epochs", epochs, 1), ("max_steps", max_steps, 1), ("patience", patience, 1)):
        if value is not None and (not isinstance(value, int) or value < lowest):
            raise ValueError(f"{name} must be an integer >= {lowest} (or None where allowed), got {value!r}.")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"time_budget_s must be a positive number of seconds (or None), got {time_budget_s!r}.")
    if checkpoint_path is not None and checkpoint_config is None:
        raise ValueError("checkpoint_path needs checkpoint_config: pass the config that builds the model.")
    if live_plot not in (True, False, "auto"):
        raise ValueError(f"live_plot must be True, False or 'auto', got {live_plot!r}.")


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


class _Budget:
    """Counts optimizer steps and seconds against ``max_steps`` and ``time_budget_s``."""

    def __init__(self, max_steps: int | None, time_budget_s: float | None):
        self.max_steps, self.time_budget_s = max_steps, time_budget_s
        self.steps, self.start = 0, time.perf_counter()

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start

    def reason(self) -> str:
        """Why training must stop now, or "" to go on."""
        if self.max_steps is not None and self.steps >= self.max_steps:
            return f"max_steps: reached {self.steps} steps"
        if self.time_budget_s is not None and self.elapsed_s() >= self.time_budget_s:
            return f"time_budget: {self.elapsed_s():.1f} s passed time_budget_s={self.time_budget_s}"
        return ""


def _train_epoch(model, batches: tqdm, loss_fn, optimizer, clip_grad_norm, device, budget: _Budget) -> dict:
    model.train()
    totals = _Means()
    for step, batch in enumerate(batches, start=1):
        on_device = to_device(batch, device)
        parts = _losses(loss_fn, model, on_device)
        loss = float(parts["loss"].detach())
        if not math.isfinite(loss):  # checked before backward, so the weights are not updated with it
            raise NonFiniteFound("training", loss, step, training_diagnosis(model, on_device, loss))
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        if clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        budget.steps += 1
        totals.add(parts, _batch_size(batch))
        batches.set_postfix(loss=f"{totals.mean('loss'):.4g}", refresh=False)
        if budget.reason():
            break
    if totals.count == 0:
        raise ValueError("train_loader yielded no batches: check the dataset size and batch_size (drop_last?).")
    return totals.means("train_")


def evaluate(model: nn.Module, loader: Iterable, loss_fn: LossFn, *, device: torch.device | str | None = None) -> dict:
    """Mean of each loss part over ``loader`` in eval mode without gradients, as ``{"valid_<part>": float}``.

    The model goes back to train mode afterwards.

    Example: ``evaluate(model, test_loader, vae_loss)["valid_loss"]``.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    device = device if device is not None else _model_device(model)
    totals = _Means()
    model.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                totals.add(_losses(loss_fn, model, to_device(batch, device)), _batch_size(batch))
    finally:
        model.train()
    if totals.count == 0:
        raise ValueError("the validation loader yielded no batches: check its dataset size and batch_size.")
    return totals.means("valid_")


def _losses(loss_fn: LossFn, model: nn.Module, batch: Any) -> Mapping[str, torch.Tensor]:
    parts = loss_fn(model, batch)
    if not isinstance(parts, Mapping) or "loss" not in parts:
        got = sorted(parts) if isinstance(parts, Mapping) else type(parts).__name__
        raise ValueError(f"loss_fn must return a dict with the key 'loss' (and any parts), got {got}.")
    return parts


def _batch_size(batch: Any) -> int:
    """Length of the first dimension of the first tensor found in ``batch`` (1 if none)."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.dim() > 0 else 1
    values = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, tuple | list) else ()
    for value in values:
        if isinstance(value, torch.Tensor | Mapping | tuple | list):
            return _batch_size(value)
    return 1


class _Means:
    """Running example-weighted means of named loss parts."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, parts: Mapping[str, torch.Tensor], n: int) -> None:
        for key, value in parts.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach()) * n
        self.count += n

    def mean(self, key: str) -> float:
        return self.sums[key] / self.count

    def means(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}{key}": self.mean(key) for key in self.sums}


def _step_scheduler(scheduler: Any, monitored: float) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    else:
        scheduler.step()


def _summary(record: dict) -> str:
    losses = ", ".join(f"{key} {value:.4g}" for key, value in record.items() if key.endswith("_loss"))
    return f"epoch {record['epoch']}: {losses} ({record['time_s']:.1f} s)"


# ----------------------------------------------------------------------------- live plot
def _wants_live_plot(live_plot: bool | str) -> bool:
    return live_plot is True or (live_plot == "auto" and _in_notebook())


def _in_notebook() -> bool:
    """True inside a running Jupyter kernel (notebook, lab, nbval); False in plain python and pytest."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class _LivePlot:
    """A loss plot shown once through an IPython display handle and redrawn in place each epoch.

    The figure is made without pyplot, so it is never registered as an open pyplot figure and
    the notebook does not show a second copy when the cell ends.
    """

    def __init__(self):
        from IPython.display import display

        self.figure = Figure(figsize=(6, 3.5), layout="constrained")
        self.ax = self.figure.add_subplot()
        self.handle = display(self._image(), display_id=True)

    def update(self, history: History) -> None:
        self.ax.clear()
        for key in ("train_loss", "valid_loss"):
            if key in history.epochs[-1]:
                self.ax.plot(history.series("epoch"), history.series(key), marker="o", label=key)
        self.ax.set(xlabel="epoch", ylabel="loss", title=_summary(history.epochs[-1]))
        self.ax.legend()
        self.handle.update(self._image())

    def _image(self):
        from IPython.display import Image

        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=80)
        return Image(data=buffer.getvalue(), format="png")
