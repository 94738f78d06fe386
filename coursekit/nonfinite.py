"""What :func:`coursekit.train.fit` does when a loss stops being a finite number: find where and why, and say so.

A NaN or inf loss does not fix itself: every later step is NaN too and the weights end NaN. ``fit``
checks every training step's loss before ``backward``, each epoch's validation loss and the weights
after each epoch, and raises :class:`NonFiniteLossError` naming the epoch and step, which of the usual
causes the step shows (a non-finite batch, weights that were already non-finite, or the loss's own
arithmetic) and what was kept (the best checkpoint, the best weights).

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from coursekit.history import History


class NonFiniteLossError(FloatingPointError):
    """:func:`fit` stopped because a loss (or the weights) stopped being a finite number (NaN or inf).

    The message names where (epoch and step), the usual causes and what was kept. Attributes:

    - ``phase``: ``"training"`` (a training step's loss), ``"validation"`` (an epoch's validation
      loss) or ``"weights"`` (the weights after an epoch whose training losses were all finite).
    - ``epoch``: the epoch (from 1); ``step``: the step within that epoch (from 1), None outside
      training; ``optimizer_step``: the optimizer step (from 1) the loss was computed for (training),
      or the number of steps taken (validation, weights).
    - ``value``: the offending value (``nan``, ``inf`` or ``-inf``).
    - ``history``: the :class:`History` of the epochs that finished with finite losses, its
      ``stop_reason`` starting with ``"non_finite"``: plot it with ``coursekit.plot.loss_curves``.

    Example::

        try:
            fit(model, train_loader, vae_loss, optimizer, epochs=10)
        except NonFiniteLossError as err:
            print(err.epoch, err.step, err.value)

    Lesson: lessons/02_vae_mnist.ipynb
    """

    def __init__(self, message: str, *, phase: str, epoch: int, step: int | None, optimizer_step: int,
                 value: float, history: History):
        super().__init__(message)
        self.phase, self.epoch, self.step, self.optimizer_step = phase, epoch, step, optimizer_step
        self.value, self.history = value, history


class NonFiniteFound(Exception):  # noqa: N818 (internal signal, turned into NonFiniteLossError by fit)
    """A non-finite loss or weight found inside an epoch; :func:`fit` adds the epoch and what was kept."""

    def __init__(self, phase: str, value: float, step: int | None = None, diagnosis: str = ""):
        super().__init__(phase)
        self.phase, self.value, self.step, self.diagnosis = phase, value, step, diagnosis


def _count_non_finite(tensor: torch.Tensor) -> str:
    """``"1 NaN"``, ``"2 inf"``, ``"1 NaN and 2 inf"`` for a floating tensor, or "" when it is all finite."""
    if not torch.is_floating_point(tensor) and not torch.is_complex(tensor):
        return ""
    nans, infs = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
    return " and ".join(text for count, text in ((nans, f"{nans} NaN"), (infs, f"{infs} inf")) if count)


def _first_non_finite(batch: Any, name: str = "batch") -> str:
    """``"batch['x'] holds 1 NaN"`` for the first tensor in ``batch`` that is not finite, or ""."""
    if isinstance(batch, torch.Tensor):
        counts = _count_non_finite(batch)
        return f"{name} holds {counts}" if counts else ""
    items = batch.items() if isinstance(batch, Mapping) else enumerate(batch) if isinstance(batch, tuple | list) else ()
    for key, value in items:
        found = _first_non_finite(value, f"{name}[{key!r}]")
        if found:
            return found
    return ""


def _non_finite_weights(model: nn.Module) -> str:
    """``"encoder.weight holds 3 NaN"`` for the first parameter or buffer that is not finite, or ""."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        counts = _count_non_finite(tensor.detach())
        if counts:
            return f"{name} holds {counts}"
    return ""


def training_diagnosis(model: nn.Module, batch: Any, loss: float) -> str:
    """Which of the usual causes this step shows, looking at its batch and the weights."""
    if found := _first_non_finite(batch):
        return f"Here the batch itself is not finite: {found}; clean the data (or the transform that made it)."
    if found := _non_finite_weights(model):
        return (f"Here the weights were already not finite ({found}): an earlier step diverged; "
                "lower the learning rate or pass clip_grad_norm.")
    kind = "NaN" if math.isnan(loss) else "inf"
    return (f"Here the batch and the weights are finite, so the {kind} came from loss_fn's arithmetic (a log of "
            "zero, a division by zero, an exp that overflowed) or from weights grown too large.")


def check_weights(model: nn.Module) -> None:
    """Raise ``NonFiniteFound("weights")`` when an epoch whose losses were finite left non-finite weights."""
    found = _non_finite_weights(model)
    if found:
        raise NonFiniteFound("weights", math.nan if "NaN" in found else math.inf, diagnosis=f"Here {found}.")


_CAUSES = (
    "Usual causes: a learning rate too high (lower lr, e.g. 10 times, or pass clip_grad_norm=1.0); a log of zero "
    "or a division by zero in loss_fn (add a small eps, e.g. torch.log(x + 1e-8), or compute from logits with "
    "F.binary_cross_entropy_with_logits); bad input data containing NaN or inf "
    "(check torch.isfinite(x).all() on the {phase} batches)."
)


def non_finite_error(found: NonFiniteFound, epoch: int, steps: int, history: History, monitored_key: str,
                      checkpoint_path: str | Path | None, restored: bool) -> NonFiniteLossError:
    """The error :func:`fit` raises for ``found``, saying where it happened, why it may have, and what was kept."""
    value = found.value
    if found.phase == "training":
        optimizer_step = steps + 1
        head = (f"the training loss is {value} at epoch {epoch}, step {found.step} (optimizer step {optimizer_step}): "
                "training stopped before that step, so the weights were not updated with it.")
        history.stop_reason = f"non_finite: training loss {value} at epoch {epoch}, step {found.step}"
    elif found.phase == "validation":
        optimizer_step = steps
        head = f"the validation loss is {value} at epoch {epoch} (after optimizer step {steps}): training stopped."
        history.stop_reason = f"non_finite: validation loss {value} at epoch {epoch}"
    else:
        optimizer_step = steps
        head = (f"the weights are {value} after epoch {epoch} (optimizer step {steps}) although every training loss "
                "was finite: a gradient overflowed (e.g. sqrt or log at 0 in loss_fn), or a step was too large.")
        history.stop_reason = f"non_finite: weights {value} after epoch {epoch}"
    best, kept = history.best_epoch, []
    if checkpoint_path is not None and best is None:
        kept.append(f"No checkpoint was written to {checkpoint_path}: no epoch finished with a finite loss.")
    elif checkpoint_path is not None:
        best_value = history.epochs[best - 1][monitored_key]
        kept.append(f"The best weights so far (epoch {best}, {monitored_key} {best_value:.4g}) "
                    f"stay in {checkpoint_path}.")
    if restored:
        kept.append(f"The model was restored to the weights of epoch {best} (restore_best=True).")
    elif best is not None:
        kept.append(f"The model keeps its last weights; pass restore_best=True to get epoch {best}'s back.")
    causes = _CAUSES.format(phase="validation" if found.phase == "validation" else "training")
    message = " ".join(part for part in (head, found.diagnosis, causes, *kept,
                                         "err.history holds the finished epochs.") if part)
    return NonFiniteLossError(message, phase=found.phase, epoch=epoch, step=found.step,
                              optimizer_step=optimizer_step, value=value, history=history)
