"""coursekit.models.sequence: the piano-roll GRU-VAE, its loss, the style classifier and style transfer."""

from __future__ import annotations

import math

import pytest
import torch

from coursekit import checkpoints, config
from coursekit.losses import calibrated_threshold, kl_divergence, positive_weight, weighted_bce
from coursekit.metrics import f1_counts, f1_scores
from coursekit.models.sequence import PianoRollVAE, PianoRollVAEConfig, build_pianoroll_vae, pianoroll_vae_loss
from coursekit.models.style import StyleClassifier, style_direction, style_transfer, train_style_classifier
from coursekit.recipes.pianoroll_vae import evaluate_reconstruction

DECODERS = ["parallel", "autoregressive"]
STEPS, COLUMNS = 8, 102


def _model(decoder: str = "parallel", seed: int = 0, **kwargs) -> PianoRollVAE:
    torch.manual_seed(seed)
    values = {"hidden": 16, "latent_dim": 4, "steps": STEPS, "decoder": decoder} | kwargs
    return build_pianoroll_vae(PianoRollVAEConfig(**values))


@pytest.fixture
def rolls(rng) -> torch.Tensor:
    """Five sparse 0/1 windows [5, 8, 102], about 5 % ones."""
    return (torch.rand(5, STEPS, COLUMNS, generator=rng) < 0.05).float()


# ----------------------------------------------------------------------------- shapes and gradients
@pytest.mark.parametrize("decoder", DECODERS)
def test_encode_decode_forward_shapes(decoder, rolls):
    model = _model(decoder)
    mu, logvar = model.encode(rolls)
    assert mu.shape == logvar.shape == (5, 4)
    assert model.decode(mu, rolls).shape == (5, STEPS, COLUMNS)
    logits, mu2, logvar2 = model(rolls)
    assert logits.shape == (5, STEPS, COLUMNS)
    torch.testing.assert_close((mu2, logvar2), (mu, logvar))
    assert model.encode(rolls[:, :3])[0].shape == (5, 4)  # the encoder reads any number of steps


@pytest.mark.parametrize(("bidirectional", "layers"), [(True, 1), (False, 1), (True, 2)])
def test_encoder_variants_build_and_encode(bidirectional, layers, rolls):
    model = _model(bidirectional=bidirectional, layers=layers)
    assert model.encoder.bidirectional is bidirectional and model.decoder.num_layers == layers
    assert model.encode(rolls)[0].shape == (5, 4)
    assert model(rolls)[0].shape == (5, STEPS, COLUMNS)


def test_the_bidirectional_encoder_reads_the_window_backwards_too(rolls):
    # a change at the LAST step reaches mu through the forward state; at the FIRST step only the
    # backward state has it as its last input, and both must move mu
    model = _model()
    mu = model.encode(rolls)[0]
    for step in (0, STEPS - 1):
        changed = rolls.clone()
        changed[:, step] = 1 - changed[:, step]
        assert not torch.allclose(model.encode(changed)[0], mu)


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_parameter_gets_a_finite_gradient(decoder, rolls):
    model = _model(decoder)
    pianoroll_vae_loss(model, {"roll": rolls}, pos_weight=20.0)["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


def test_the_autoregressive_decoder_only_sees_earlier_steps(rolls):
    model = _model("autoregressive")
    z = torch.randn(5, 4)
    logits = model.decode(z, rolls)
    later = rolls.clone()
    later[:, 5:] = 1 - later[:, 5:]  # change steps 5..7: logits of steps 0..5 must not move
    changed = model.decode(z, later)
    torch.testing.assert_close(changed[:, :6], logits[:, :6])
    assert not torch.allclose(changed[:, 6:], logits[:, 6:])


def test_the_parallel_decoder_ignores_the_target(rolls):
    model = _model("parallel")
    z = torch.randn(5, 4)
    torch.testing.assert_close(model.decode(z, rolls), model.decode(z, 1 - rolls))
    torch.testing.assert_close(model.decode(z), model.decode(z, rolls))


# ----------------------------------------------------------------------------- loss
def test_loss_equals_bce_with_pos_weight_written_out_plus_beta_kl(rolls):
    model, w, beta = _model(), 7.5, 0.3
    noise = torch.Generator().manual_seed(5)
    parts = pianoroll_vae_loss(model, {"roll": rolls}, beta=beta, pos_weight=w, generator=noise)
    logits, mu, logvar = model(rolls, generator=torch.Generator().manual_seed(5))
    p = torch.sigmoid(logits.double())
    y = rolls.double()
    by_hand = -(w * y * torch.log(p) + (1 - y) * torch.log(1 - p)).sum(dim=(1, 2)).mean()
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(dim=1).mean()
    parts = {key: float(value.detach()) for key, value in parts.items()}
    by_hand, kl = float(by_hand.detach()), float(kl.detach())
    assert parts["recon"] == pytest.approx(by_hand, rel=1e-5)
    assert parts["kl"] == pytest.approx(kl, rel=1e-5)
    assert parts["loss"] == pytest.approx(by_hand + beta * kl, rel=1e-5)


def test_pos_weight_only_scales_the_loss_of_the_one_cells():
    logits = torch.tensor([[[0.3, -1.2, 2.0]]])
    ones, zeros = torch.ones(1, 1, 3), torch.zeros(1, 1, 3)
    assert float(weighted_bce(logits, ones, 4.0)) == pytest.approx(4 * float(weighted_bce(logits, ones, 1.0)))
    assert float(weighted_bce(logits, zeros, 4.0)) == pytest.approx(float(weighted_bce(logits, zeros, 1.0)))
    # a silent guess costs pos_weight * log 2 per sounding cell at logit 0
    assert float(weighted_bce(torch.zeros(1, 1, 3), ones, 4.0)) == pytest.approx(3 * 4 * math.log(2))


def test_loss_takes_a_batch_dict_or_a_tensor_and_kl_is_the_library_kl(rolls):
    model = _model()
    a = pianoroll_vae_loss(model, {"roll": rolls}, generator=torch.Generator().manual_seed(1))
    b = pianoroll_vae_loss(model, rolls, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a[key], b[key]) for key in ("loss", "recon", "kl"))
    torch.testing.assert_close(a["kl"], kl_divergence(*model.encode(rolls)))


def test_positive_weight_is_zeros_over_ones():
    first = torch.zeros(2, 3)
    first[0, 0] = 1
    second = torch.zeros(2, 3)
    second[1, 2] = 1
    second[0, 1] = 1
    # 3 ones among 12 cells: 9 / 3
    assert positive_weight([{"roll": first}, {"roll": second}]) == pytest.approx(3.0)
    assert positive_weight([first, second]) == pytest.approx(3.0)
    assert positive_weight([torch.stack([first, second])]) == pytest.approx(3.0)  # a batch, as loaders yield


def test_positive_weight_rejects_silence_and_non_binary_rolls():
    with pytest.raises(ValueError, match="no 1"):
        positive_weight([torch.zeros(4, 102)])
    with pytest.raises(ValueError, match="only 0 and 1"):
        positive_weight([torch.full((4, 102), 0.5)])


# ----------------------------------------------------------------------------- determinism and generation
@pytest.mark.parametrize("decoder", DECODERS)
def test_same_seed_same_model_and_same_outputs(decoder, rolls):
    first, second = _model(decoder, seed=3), _model(decoder, seed=3)
    pairs = zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    out1 = first(rolls, generator=torch.Generator().manual_seed(9))
    out2 = second(rolls, generator=torch.Generator().manual_seed(9))
    assert all(torch.equal(a, b) for a, b in zip(out1, out2, strict=True))
    assert not torch.equal(_model(decoder, seed=4).encode(rolls)[0], out1[1])


@pytest.mark.parametrize("decoder", DECODERS)
def test_generate_gives_binary_rolls_that_agree_with_decode(decoder):
    model = _model(decoder)
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    out = model.generate(z)
    assert out.shape == (3, STEPS, COLUMNS) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert model.generate(z, steps=5).shape == (3, 5, COLUMNS)
    # thresholding the decoder's probabilities, fed (autoregressively) its own output, gives it back
    torch.testing.assert_close((torch.sigmoid(model.decode(z, out)) > 0.5).float(), out)
    # a lower threshold turns on at least the same cells
    assert (model.generate(z, threshold=0.2) >= out).all() if decoder == "parallel" else True


@pytest.mark.parametrize("decoder", DECODERS)
def test_sampled_generation_is_binary_and_reproducible(decoder):
    model = _model(decoder)
    z = torch.randn(3, 4)
    first = model.generate(z, sample=True, generator=torch.Generator().manual_seed(2))
    again = model.generate(z, sample=True, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and set(first.unique().tolist()) <= {0.0, 1.0}
    assert first.sum() > 0  # an untrained decoder's probabilities are near 0.5


def test_a_short_training_learns_to_reconstruct_two_patterns():
    torch.manual_seed(0)
    patterns = torch.zeros(2, STEPS, COLUMNS)
    patterns[0, :, 10] = 1  # a held note in the right hand
    patterns[1, :, 60] = 1  # a held note and a shorter one in the left hand
    patterns[1, :4, 64] = 1
    data = patterns.repeat(8, 1, 1)
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    w = positive_weight([data])  # about 81: 1.2 % of the cells are on
    threshold = calibrated_threshold(w)
    before = evaluate_reconstruction(model, [data], threshold)["f1"]
    for _ in range(150):
        optimizer.zero_grad()
        pianoroll_vae_loss(model, data, beta=0.1, pos_weight=w)["loss"].backward()
        optimizer.step()
    after = evaluate_reconstruction(model, [{"roll": data}], threshold)
    assert before < 0.2 and after["f1"] > 0.95, (before, after)
    assert after["density"] == pytest.approx(float(data.mean()))
    # at 0.5 the weighted decoder turns on cells that are only rarely on: recall stays, precision drops
    naive = evaluate_reconstruction(model, [data], 0.5)
    assert naive["recall"] >= after["recall"] and naive["predicted_density"] > after["predicted_density"]


def test_weighted_bce_inflates_probabilities_as_calibrated_threshold_says():
    # one cell that is on in a quarter of the examples: the best logit under pos_weight w gives
    # p = w q / (w q + 1 - q), and p equals calibrated_threshold(w) exactly when q = 0.5
    w = 3.0
    for q, n_on in ((0.25, 1), (0.5, 2)):
        target = torch.zeros(4, 1, 1)
        target[:n_on] = 1
        logit = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.Adam([logit], lr=0.1)
        for _ in range(400):
            optimizer.zero_grad()
            weighted_bce(logit.expand(4, 1, 1), target, w).backward()
            optimizer.step()
        assert float(torch.sigmoid(logit.detach())) == pytest.approx(w * q / (w * q + 1 - q), abs=1e-3)
    assert float(torch.sigmoid(logit.detach())) == pytest.approx(calibrated_threshold(w), abs=1e-3)
    assert calibrated_threshold(1.0) == 0.5 and calibrated_threshold(3.0) == 0.75


def test_f1_counts_and_scores_known_values():
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0]])
    guess = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]])
    counts = f1_counts(guess, target)
    assert counts == {"tp": 2, "fp": 1, "fn": 1}
    assert f1_scores(**counts) == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert f1_scores(**f1_counts(torch.zeros_like(target), target)) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


# ----------------------------------------------------------------------------- style
def _two_clusters(n: int = 40, latent: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    mu = 0.3 * torch.randn(n, latent, generator=generator)
    mu[:, 0] += 4.0 * labels - 2.0  # style 0 near -2, style 1 near +2 on the first axis
    return mu, labels


def test_style_classifier_learns_a_separable_toy_and_holds_out_whole_groups():
    mu, labels = _two_clusters()
    classifier, accuracy = train_style_classifier(mu, labels, held_out=0.25)
    assert isinstance(classifier, StyleClassifier) and accuracy == 1.0
    assert classifier(mu).shape == (40, 2) and torch.equal(classifier.predict(mu), labels)
    groups = [f"piece{i // 4}" for i in range(40)]
    _, by_group = train_style_classifier(mu, labels, groups=groups)
    assert by_group == 1.0
    _, shuffled = train_style_classifier(mu, labels[torch.randperm(40, generator=torch.Generator().manual_seed(0))])
    assert shuffled < 0.9  # random labels cannot be learned from the latents


def test_style_direction_is_the_difference_of_the_style_means():
    mu = torch.tensor([[0.0, 1.0], [2.0, 3.0], [10.0, 10.0], [12.0, 14.0]])
    styles = torch.tensor([0, 0, 1, 1])
    torch.testing.assert_close(style_direction(mu, styles), torch.tensor([10.0, 10.0]))
    torch.testing.assert_close(style_direction(mu, styles, source=1, target=0), torch.tensor([-10.0, -10.0]))


def test_style_transfer_moves_the_latent_and_decodes_it(rolls):
    model = _model()
    direction = torch.tensor([1.0, -2.0, 0.0, 0.5])
    mu = model.encode(rolls)[0]
    new_roll, z = style_transfer(model, rolls, direction, strength=0.5)
    torch.testing.assert_close(z, mu + 0.5 * direction)
    assert torch.equal(new_roll, model.generate(z))
    still, z0 = style_transfer(model, rolls, direction, strength=0.0)
    assert torch.equal(still, model.reconstruct(rolls)) and torch.equal(z0, mu)
    _, from_mu = style_transfer(model, None, direction, strength=2.0, source_mu=mu)
    torch.testing.assert_close(from_mu, mu + 2.0 * direction)


def test_moving_along_the_direction_crosses_the_classifier_boundary():
    mu, labels = _two_clusters()
    classifier, _ = train_style_classifier(mu, labels)
    direction = style_direction(mu, labels)
    moved = mu[labels == 0] + direction
    assert (classifier.predict(moved) == 1).float().mean() > 0.9


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("roll", "error", "message"),
    [
        (torch.zeros(STEPS, COLUMNS), ValueError, r"unsqueeze\(0\)"),
        (torch.zeros(2, STEPS, 88), ValueError, r"expected \[batch, steps, 102\]"),
        (torch.zeros(2, STEPS, COLUMNS, dtype=torch.long), TypeError, r"\.float\(\)"),
        ([[0.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_rolls_are_explained(roll, error, message):
    with pytest.raises(error, match=message):
        _model().encode(roll)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decoder": "lstm"}, "decoder='lstm'"),
        ({"hidden": 0}, "hidden=0"),
        ({"latent_dim": 2.5}, "latent_dim=2.5"),
        ({"bidirectional": "yes"}, "bidirectional"),
    ],
)
def test_bad_configs_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PianoRollVAEConfig(**kwargs)


def test_other_bad_inputs_are_explained(rolls):
    model = _model("autoregressive")
    with pytest.raises(ValueError, match="generate"):
        model.decode(torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"expected \[batch, 4\]"):
        model.generate(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="threshold"):
        model.generate(torch.zeros(5, 4), threshold=1.5)
    with pytest.raises(ValueError, match="pos_weight"):
        pianoroll_vae_loss(model, rolls, pos_weight=0)
    with pytest.raises(ValueError, match="beta"):
        pianoroll_vae_loss(model, rolls, beta=-1)
    with pytest.raises(KeyError, match="roll"):
        pianoroll_vae_loss(model, {"image": rolls})
    with pytest.raises(ValueError, match="no row has style 1"):
        style_direction(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="one label per row"):
        train_style_classifier(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="exactly one of roll"):
        style_transfer(model, rolls, torch.zeros(4), source_mu=torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"direction has shape \[3\]"):
        style_transfer(model, rolls, torch.zeros(3))
    with pytest.raises(ValueError, match="PianoRollVAEConfig has no field"):
        build_pianoroll_vae({"hiden": 3})


def test_config_round_trips_through_a_dict():
    cfg = PianoRollVAEConfig(hidden=8, latent_dim=3, decoder="autoregressive")
    assert PianoRollVAEConfig.from_dict(cfg.to_dict()) == cfg
    assert build_pianoroll_vae(cfg.to_dict()).config == cfg


# ----------------------------------------------------------------------------- the lesson-07 recipe's helpers
@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    from coursekit.data.pianoroll_splits import pianoroll_splits

    return pianoroll_splits(max_pieces=3, root=tmp_path_factory.mktemp("pianorolls"))


def test_splits_are_by_piece_hold_both_styles_and_only_train_is_transposed(splits):
    from coursekit.recipes.pianoroll_vae import _pieces_of

    pieces = {name: set(_pieces_of(split)) for name, split in splits.items()}
    assert not pieces["train"] & pieces["valid"] and not pieces["train"] & pieces["test"]
    assert not pieces["valid"] & pieces["test"]
    assert len(pieces["train"]) == len(pieces["valid"]) == len(pieces["test"]) == 2  # one piece per style each
    for name, split in splits.items():
        assert {split[i]["style"] for i in range(len(split))} == {0, 1}, name
    assert splits["train"].dataset.transpose == 3
    assert splits["valid"].dataset.transpose == splits["test"].dataset.transpose == 0


def test_epoch_loader_draws_new_transpositions_each_pass(splits):
    from coursekit.data.pianoroll_splits import EpochLoader

    loader = EpochLoader(torch.utils.data.DataLoader(splits["train"], batch_size=1000))
    first, second = (next(iter(loader))["transpose"] for _ in range(2))
    assert loader.epoch == 2 and len(loader) == 1
    assert not torch.equal(first, second)
    with pytest.raises(TypeError, match="PianoRolls"):
        EpochLoader(torch.utils.data.DataLoader(list(range(4))))


def test_too_few_pieces_for_three_splits_are_explained(tmp_path):
    from coursekit.data.pianoroll_splits import pianoroll_splits

    with pytest.raises(ValueError, match="max_pieces >= 3"):
        pianoroll_splits(max_pieces=2, root=tmp_path)


def test_frequency_baseline_keeps_the_columns_that_maximise_training_f1():
    from coursekit.metrics import frequency_baseline

    rolls = torch.zeros(2, 2, 3)
    rolls[:, :, 0] = 1  # always on
    rolls[0, :, 1] = 1  # on half the time; column 2 never
    result = frequency_baseline(rolls, rolls)
    # columns 0 and 1 on everywhere: 6 true positives, 2 false positives, no misses
    assert result["threshold"] == 0.5
    assert result["f1"] == pytest.approx(2 * 0.75 / 1.75)


# ----------------------------------------------------------------------------- the shipped checkpoint
@pytest.fixture(scope="module")
def shipped():
    if "pianoroll_vae" not in checkpoints.list_pretrained():  # a shipped checkpoint: fail, never skip
        pytest.fail("pianoroll_vae is not registered: run `python -m coursekit train pianoroll_vae --ship`.")
    return checkpoints.load_pretrained("pianoroll_vae", build_pianoroll_vae)


def test_shipped_checkpoint_is_small_and_its_metrics_beat_the_baseline(shipped):
    entry = checkpoints.list_pretrained()["pianoroll_vae"]
    assert (config.checkpoint_dir() / entry["file"]).stat().st_size == entry["size_bytes"] < 10 * 2**20
    model, ckpt = shipped
    metrics = ckpt["metrics"]
    assert isinstance(model, PianoRollVAE) and not model.training
    assert model.config.steps == 64 and model.config.n_pitches == COLUMNS
    assert len(metrics["style_direction"]) == model.config.latent_dim
    assert metrics["valid_f1"] > metrics["baseline_valid_f1"] + 0.15  # 0.37 vs 0.17 when shipped
    assert metrics["test_f1"] > metrics["baseline_test_f1"] + 0.15
    assert metrics["style_accuracy"] > 0.9 and metrics["transfer_flip"] > 0.5


def test_shipped_checkpoint_reconstructs_real_windows(shipped, splits):
    model, ckpt = shipped
    windows = torch.utils.data.DataLoader(splits["valid"], batch_size=64)
    result = evaluate_reconstruction(model, windows, ckpt["metrics"]["threshold"])
    assert result["f1"] > 0.25, result  # 0.35 when shipped; an untrained model scores 0 at this threshold
    out = model.generate(torch.zeros(2, model.config.latent_dim), threshold=ckpt["metrics"]["threshold"])
    assert out.shape == (2, 64, COLUMNS) and set(out.unique().tolist()) <= {0.0, 1.0}
