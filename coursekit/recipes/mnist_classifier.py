"""Lesson 02's judge: the digit classifier that scores the VAEs' prior samples.

``digit_classifier`` trains :class:`~coursekit.models.digits.DigitClassifier` on the same 3,600
training digits as the VAEs (:func:`~coursekit.recipes.mnist_vae.mnist_loaders`), keeps the epoch
with the lowest cross-entropy on the 400 validation digits, and records its accuracy and its
:func:`~coursekit.models.digits.judge_digits` verdict on the 1,000 test digits, which no model of
the lesson trains on: the real-digit baseline of the lesson.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from coursekit import config
from coursekit.checkpoints import save_checkpoint
from coursekit.models import parameter_count
from coursekit.models.digits import (
    DigitClassifier,
    DigitClassifierConfig,
    build_digit_classifier,
    digit_loss,
    judge_digits,
)
from coursekit.recipes.mnist_vae import MNIST_SEED, mnist_loaders
from coursekit.recipes.registry import register_recipe
from coursekit.train import fit

CLASSIFIER_EPOCHS = 30
CLASSIFIER_PATIENCE = 6  # epochs without a lower validation loss before stopping
CLASSIFIER_LR = 1e-3


def loader_images(loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(images [n, 1, 28, 28], labels [n])`` of an MNIST loader, in its order.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    batches = list(loader)
    return torch.cat([b["image"] for b in batches]), torch.cat([b["label"] for b in batches])


def classifier_accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``images [n, 1, 28, 28]`` whose most likely digit is ``labels [n]``.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    return float((model.probabilities(images).argmax(dim=1) == labels).float().mean())


def train_digit_classifier(
    model_config: DigitClassifierConfig | None = None, epochs: int = CLASSIFIER_EPOCHS, n_train: int | None = None,
    seed: int = MNIST_SEED, live_plot: bool | str = "auto", progress: bool = True,
) -> tuple[DigitClassifier, dict]:  # fmt: skip
    """Train the digit classifier on the VAEs' training digits; measure it on the validation and test digits.

    Args:
        model_config: the network; default :class:`DigitClassifierConfig`.
        epochs: most epochs (it stops after ``CLASSIFIER_PATIENCE`` epochs without a better validation loss).
        n_train: keep this many training digits (for tests); None keeps all 3,600.
        seed: the seed of the weights, of the validation split and of the batch order.

    Returns:
        ``(model in eval mode, metrics)``, metrics ``{"test_accuracy", "valid_accuracy", "test_verdict"
        (:func:`judge_digits` of the test digits), "parameters", "epochs_run", "best_epoch",
        "train_seconds", "train_digits", "history"}``.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    config.seed_everything(seed)
    train, valid, test = mnist_loaders(n_train=n_train, seed=seed)
    model = build_digit_classifier(model_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=CLASSIFIER_LR)
    start = time.perf_counter()
    history = fit(model, train, digit_loss, optimizer, valid_loader=valid, epochs=epochs,
                  patience=CLASSIFIER_PATIENCE, restore_best=True, live_plot=live_plot, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    model.eval()
    test_images, test_labels = loader_images(test)
    valid_images, valid_labels = loader_images(valid)
    return model, {
        "test_accuracy": classifier_accuracy(model, test_images, test_labels),
        "valid_accuracy": classifier_accuracy(model, valid_images, valid_labels),
        "test_verdict": judge_digits(model.probabilities(test_images)),
        "parameters": parameter_count(model),
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "train_seconds": round(seconds, 1),
        "train_digits": len(train.dataset),
        "history": {key: history.series(key) for key in ("train_loss", "valid_loss", "valid_accuracy")},
    }


@register_recipe("digit_classifier", "small CNN digit classifier on lesson 02's 3,600 MNIST training digits "
                 "(29k parameters): the judge of the VAEs' prior samples")  # fmt: skip
def digit_classifier(path: Path, ship: bool) -> None:
    model, metrics = train_digit_classifier(live_plot=False, progress=False)
    save_checkpoint(path, model, model.config, metrics)
    print(
        f"digit_classifier: test accuracy {metrics['test_accuracy']:.1%}, best epoch {metrics['best_epoch']} "
        f"of {metrics['epochs_run']}, {metrics['train_seconds']} s"
    )
