"""coursekit.models.digits and its recipe: lesson 02's digit classifier, its verdict on a set of images,
and the shipped checkpoint that judges the VAEs' prior samples."""

from __future__ import annotations

import math

import pytest
import torch

from coursekit import checkpoints, config
from coursekit.models.digits import (
    DigitClassifierConfig,
    build_digit_classifier,
    digit_loss,
    judge_digits,
)
from coursekit.recipes import RECIPES
from coursekit.recipes.mnist_classifier import classifier_accuracy, loader_images, train_digit_classifier
from coursekit.recipes.mnist_vae import mnist_loaders


def one_hot(digits: list[int]) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(digits), 10).float()


# ----------------------------------------------------------------------------- judge_digits
def test_sure_predictions_score_full_confidence_and_zero_entropy():
    verdict = judge_digits(one_hot([3, 3, 3, 7]))
    assert verdict["confidence"] == 1.0 and verdict["sure"] == 1.0
    assert verdict["entropy"] == pytest.approx(0.0, abs=1e-9)
    assert verdict["counts"] == [0, 0, 0, 3, 0, 0, 0, 1, 0, 0]
    assert verdict["classes"] == 2 and verdict["top_digit"] == 3 and verdict["top_share"] == 0.75


def test_uniform_guesses_score_a_tenth_and_log_ten():
    verdict = judge_digits(torch.full((5, 10), 0.1))
    assert verdict["confidence"] == pytest.approx(0.1)
    assert verdict["entropy"] == pytest.approx(math.log(10))
    assert verdict["sure"] == 0.0


def test_a_digit_counts_as_covered_only_from_one_percent_of_the_images():
    digits = [0] * 190 + [1] * 8 + [2] * 2  # 200 images: 1 % is 2 images
    verdict = judge_digits(one_hot(digits))
    assert verdict["classes"] == 3
    assert judge_digits(one_hot(digits), cover_share=0.05)["classes"] == 1  # 5 % is 10 images
    assert judge_digits(one_hot(digits), cover_share=0.0)["classes"] == 3  # never a digit with no image


def test_judge_digits_checks_its_input():
    with pytest.raises(ValueError, match=r"probs must be \[images >= 1, 10\]: got \[4, 9\]"):
        judge_digits(torch.full((4, 9), 1 / 9))
    with pytest.raises(ValueError, match="not logits"):
        judge_digits(torch.zeros(4, 10))


# ----------------------------------------------------------------------------- the network
def test_classifier_maps_digits_to_ten_probabilities_and_rejects_other_shapes():
    model = build_digit_classifier()
    images = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert model(images).shape == (7, 10)
    probs = model.probabilities(images, batch_size=3)
    assert probs.shape == (7, 10) and not model.training
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(7))
    with pytest.raises(ValueError, match=r"\[batch, 1, 28, 28\].*got \[7, 28, 28\]"):
        model(images[:, 0])


def test_config_round_trips_and_rejects_bad_values():
    config_ = DigitClassifierConfig(channels=(8, 8, 16))
    assert build_digit_classifier(config_.to_dict()).config == config_
    with pytest.raises(ValueError, match="three whole numbers"):
        DigitClassifierConfig(channels=(8, 8))
    with pytest.raises(ValueError, match="dropout"):
        DigitClassifierConfig(dropout=1.0)


def test_digit_loss_is_the_cross_entropy_and_counts_the_right_answers():
    model = build_digit_classifier(DigitClassifierConfig(dropout=0.0))
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    logits = model(images)
    labels = logits.argmax(dim=1).clone()
    labels[0] = (labels[0] + 1) % 10  # one wrong answer of four
    parts = digit_loss(model, {"image": images, "label": labels})
    torch.testing.assert_close(parts["loss"], torch.nn.functional.cross_entropy(logits, labels))
    assert float(parts["accuracy"]) == 0.75


def test_a_short_training_learns_the_digits():
    model, metrics = train_digit_classifier(epochs=3, n_train=1000, live_plot=False, progress=False)
    assert metrics["train_digits"] == 1000 and metrics["epochs_run"] == 3
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1; three epochs on 1,000 digits reach about 0.78
    assert sum(metrics["test_verdict"]["counts"]) == 1000


# ----------------------------------------------------------------------------- the shipped checkpoint
def test_shipped_classifier_is_small_and_reproduces_its_recorded_test_accuracy():
    assert "digit_classifier" in RECIPES
    entry = checkpoints.list_pretrained()["digit_classifier"]
    assert (config.checkpoint_dir() / entry["file"]).stat().st_size == entry["size_bytes"] < 2**20
    model, ckpt = checkpoints.load_pretrained("digit_classifier", build_digit_classifier)
    images, labels = loader_images(mnist_loaders()[2])
    accuracy = classifier_accuracy(model, images, labels)
    assert accuracy == pytest.approx(ckpt["metrics"]["test_accuracy"], abs=1e-6)
    assert accuracy > 0.95
    verdict = judge_digits(model.probabilities(images))
    assert verdict["confidence"] == pytest.approx(ckpt["metrics"]["test_verdict"]["confidence"], abs=1e-5)
    assert verdict["classes"] == 10
