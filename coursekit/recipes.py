"""The recipes that rebuild every shipped checkpoint: ``python -m coursekit.train <recipe>``.

Each recipe trains one model from a fixed seed on the CPU, saves the best epoch to
``checkpoints/<recipe>.pt`` with its config and measured metrics, and registers the file's SHA-256
in ``checkpoints/registry.json``. One section per lesson.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from coursekit import audio, config
from coursekit.checkpoints import list_pretrained, load_pretrained, register_checkpoint, save_checkpoint
from coursekit.data.mnist import MNIST
from coursekit.losses import elbo_loss
from coursekit.metrics import active_units
from coursekit.models.spectrogram import (
    AE_CHECKPOINT,
    VAE_CHECKPOINT,
    LatentVAE,
    LatentVAEConfig,
    NoteTensors,
    SpectrogramAE,
    SpectrogramAEConfig,
    SpectrogramFeatures,
    ae_loss,
    build_latent_vae,
    build_spectrogram_ae,
    latent_vae_loss,
    nsynth_features,
    parameter_count,
    pre_encode,
)
from coursekit.models.vae import ImageVAE, VAEConfig, build_vae, vae_loss
from coursekit.train import fit, register_recipe

# ----------------------------------------------------------------------------- lesson 02: VAEs on MNIST
MNIST_SEED = 0
MNIST_VALID = 400  # digits held out of the train split to choose the best epoch; the test split stays unseen
MNIST_BATCH = 64


def mnist_loaders(
    n_train: int | None = None, batch_size: int = MNIST_BATCH, seed: int = MNIST_SEED
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train, validation and test loaders of MNIST batches ``{"image": [b, 1, 28, 28], "label": [b]}``.

    The validation set is ``MNIST_VALID`` digits of the train split chosen by ``seed``; the test
    split is never used for training or model choice.

    Args:
        n_train: keep this many training digits (e.g. for FAST mode); None keeps all the others.
        batch_size: training batch size; validation and test use 500.
        seed: chooses the validation digits and the shuffling order.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    train_split = MNIST("train")
    order = torch.randperm(len(train_split), generator=torch.Generator().manual_seed(seed)).tolist()
    valid_idx, train_idx = order[:MNIST_VALID], order[MNIST_VALID:]
    if n_train is not None:
        train_idx = train_idx[:n_train]
    shuffle = torch.Generator().manual_seed(seed)
    return (
        DataLoader(Subset(train_split, train_idx), batch_size=batch_size, shuffle=True, generator=shuffle),
        DataLoader(Subset(train_split, valid_idx), batch_size=500),
        DataLoader(MNIST("test"), batch_size=500),
    )


@torch.no_grad()
def describe_vae(model: ImageVAE, loader: DataLoader) -> dict[str, float | int]:
    """Measure a VAE on ``loader``: ELBO parts (nats per image), mean squared pixel error, active units.

    Returns ``{"elbo_loss", "recon", "kl", "pixel_mse", "active_units"}``; the losses
    use one posterior sample per image under a fixed seed, so repeated calls agree.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    model.eval()
    generator = torch.Generator().manual_seed(0)
    totals = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "pixel_mse": 0.0}
    mus, n = [], 0
    for batch in loader:
        x = batch["image"]
        logits, mu, logvar = model(x, generator=generator)
        parts = elbo_loss(x, logits, mu, logvar)
        for key in ("loss", "recon", "kl"):
            totals[key] += float(parts[key]) * len(x)
        x_hat = torch.sigmoid(model.decode(mu))
        totals["pixel_mse"] += float((x_hat - x).pow(2).mean(dim=(1, 2, 3)).sum())
        mus.append(mu)
        n += len(x)
    return {
        "elbo_loss": totals["loss"] / n,
        "recon": totals["recon"] / n,
        "kl": totals["kl"] / n,
        "pixel_mse": totals["pixel_mse"] / n,
        "active_units": active_units(torch.cat(mus))[0],
    }


def train_mnist_vae(
    vae_config: VAEConfig,
    epochs: int,
    checkpoint_path: str | Path | None = None,
    n_train: int | None = None,
    patience: int | None = 8,
    lr: float = 1e-3,
    seed: int = MNIST_SEED,
    live_plot: bool | str = "auto",
    progress: bool = True,
) -> tuple[ImageVAE, dict]:
    """Train an image VAE on MNIST with the plain ELBO and return it with its measurements.

    The model keeps the weights of the best validation epoch. The measurements are
    :func:`describe_vae` on the validation and test sets (keys prefixed ``valid_`` and ``test_``)
    plus ``epochs_run``, ``best_epoch``, ``train_time_s`` (seconds of training on this machine),
    ``train_digits``, ``parameters`` and ``history`` (per-epoch ``train_loss`` and ``valid_loss``).

    Lesson: lessons/02_vae_mnist.ipynb
    """
    config.seed_everything(seed)
    train, valid, test = mnist_loaders(n_train=n_train, seed=seed)
    model = build_vae(vae_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    history = fit(
        model, train, vae_loss, optimizer, valid_loader=valid, epochs=epochs, patience=patience,
        live_plot=live_plot, progress=progress, restore_best=True,
    )
    seconds = time.perf_counter() - start
    metrics = {
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "train_time_s": round(seconds, 1),
        "train_digits": len(train.dataset),
        "parameters": sum(p.numel() for p in model.parameters()),
        **{f"valid_{k}": v for k, v in describe_vae(model, valid).items()},
        **{f"test_{k}": v for k, v in describe_vae(model, test).items()},
        "history": {key: history.series(key) for key in ("train_loss", "valid_loss")},
    }
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, vae_config, metrics)
    return model, metrics


MNIST_VAES = {  # recipe name -> (config, epochs, description)
    "vae_mnist_linear": (VAEConfig("linear", latent_dim=16), 80, "fully connected VAE on MNIST, latent size 16"),
    "vae_mnist_conv": (VAEConfig("conv", latent_dim=16), 60, "convolutional VAE on MNIST, latent size 16"),
    "vae_mnist_conv_bn": (VAEConfig("conv_bn", latent_dim=16), 60, "convolutional VAE with batch norm, latent 16"),
    "vae_mnist_2d": (VAEConfig("conv", latent_dim=2), 60, "convolutional VAE on MNIST, latent size 2 (manifold)"),
}


def _train_and_register(name: str) -> Path:
    """Train ``MNIST_VAES[name]`` on one thread, save ``checkpoints/<name>.pt`` and register it."""
    vae_config, epochs, description = MNIST_VAES[name]
    path = config.checkpoint_dir() / f"{name}.pt"
    torch.set_num_threads(1)  # the same arithmetic on every machine, and no oversubscription
    _, metrics = train_mnist_vae(vae_config, epochs, checkpoint_path=path, live_plot=False, progress=False)
    print(f"{name}: test ELBO loss {metrics['test_elbo_loss']:.1f} nats, {metrics['train_time_s']} s")
    register_checkpoint(name, path, f"python -m coursekit.train {name}", description)
    return path


def _mnist_vae_recipe(name: str):
    def recipe() -> Path:
        return _train_and_register(name)

    recipe.__doc__ = f"{MNIST_VAES[name][2][0].upper()}{MNIST_VAES[name][2][1:]} (lesson 02)."
    return recipe


for _name in MNIST_VAES:
    register_recipe(_name)(_mnist_vae_recipe(_name))


# ----------------------------------------------------------------------------- lesson 04: spectrogram VAE
# Two stages, as in source 003: the Conv2D autoencoder on NSynth-mini features, then the VAE core on
# its pre-encoded codes. Measured on one CPU thread: features of the 1,140 train notes take ~3 s, an
# autoencoder epoch ~14 s, so SPEC_AE_EPOCHS fits in about ten minutes; the VAE core takes ~15 s.
SPEC_SEED = 0
SPEC_AE_BATCH, SPEC_AE_LR, SPEC_AE_EPOCHS, SPEC_AE_PATIENCE = 16, 1e-3, 40, 5
SPEC_VAE_BATCH, SPEC_VAE_LR, SPEC_VAE_EPOCHS, SPEC_VAE_PATIENCE = 64, 1e-3, 400, 30
SPEC_CHECK_NOTES = 24  # test notes decoded to audio by audio_check
SPEC_FIRST = 8  # the first test notes, measured alone so that tests can reproduce a figure cheaply


@torch.no_grad()
def describe_ae(ae: SpectrogramAE, dataset: NoteTensors, batch_size: int = 128) -> dict[str, float]:
    """Mean squared feature error of an autoencoder over a dataset, in eval mode: ``{"mse": float}``.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    ae.eval()
    features = dataset.tensors["features"]
    total = sum(float(F.mse_loss(ae(chunk), chunk, reduction="sum")) for chunk in features.split(batch_size))
    return {"mse": total / features.numel()}


@torch.no_grad()
def describe_latent_vae(vae: LatentVAE, codes: NoteTensors, ae: SpectrogramAE | None = None) -> dict[str, float | int]:
    """Measure the VAE core on pre-encoded codes, in eval mode, with one posterior sample per note (seed 0).

    Returns ``{"elbo_loss", "recon", "kl"}`` (nats per note; the decoder's density is continuous,
    so the ELBO may be negative), ``"code_mse"`` (mean squared code error of ``decode(mu)``),
    ``"active_units"`` (of the posterior means) and, given the autoencoder ``ae`` and a dataset
    with ``"features"`` beside ``"code"``, ``"feature_mse"``: the features' error after the whole
    path features -> code -> latent mean -> code -> features.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    vae.eval()
    code = codes.tensors["code"]
    parts = latent_vae_loss(vae, {"code": code}, generator=torch.Generator().manual_seed(0))
    mu, _ = vae.encode(code)
    code_hat = vae.decode(mu)
    measured = {key: float(parts[key]) for key in ("recon", "kl")} | {
        "elbo_loss": float(parts["loss"]),
        "code_mse": float((code_hat - code).pow(2).mean()),
        "active_units": active_units(mu)[0],
    }
    if ae is not None and "features" in codes.tensors:
        ae.eval()
        features = codes.tensors["features"]
        error = sum(float(F.mse_loss(ae.decode(c), f, reduction="sum")) for c, f in zip(code_hat.split(128),
                    features.split(128), strict=True))  # fmt: skip
        measured["feature_mse"] = error / features.numel()
    return measured


@torch.no_grad()
def audio_check(
    ae: SpectrogramAE,
    vae: LatentVAE | None = None,
    features: SpectrogramFeatures | None = None,
    split: str = "test",
    n_notes: int = SPEC_CHECK_NOTES,
    size: str | int = "mini",
    seed: int = SPEC_SEED,
) -> dict[str, float | int]:
    """A listen-free check: decode notes to audio and measure their spectral distance to the originals.

    Takes ``n_notes`` notes of ``split`` (chosen by ``seed``), their first 2 s peak-normalised as
    the reference, and reports :func:`coursekit.audio.spectral_distance` (mean log-magnitude
    difference, lower is closer) of: ``griffin_lim`` (the true features, decoded: the best the
    features allow), ``ae`` (through the autoencoder), ``vae`` (through the VAE core's posterior
    mean) and ``shuffled`` (the autoencoder's reconstructions paired with other notes: what
    "unrelated" scores). Also the RMS level in dBFS of the references and, with ``vae``, of as
    many notes decoded from prior samples (silence would read -200 dB).

    Returns:
        ``{"spectral_distance_<kind>": float, ..., "rms_db_originals", "rms_db_prior_mean",
        "rms_db_prior_min", "check_notes"}``.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    from coursekit.data.nsynth import NSynthMini

    features = SpectrogramFeatures() if features is None else features
    notes = NSynthMini(split, size=size, seed=seed)
    n_notes = min(n_notes, len(notes))
    chosen = torch.randperm(len(notes), generator=torch.Generator().manual_seed(seed))[:n_notes].tolist()
    originals = torch.stack([notes[i]["audio"] for i in chosen])
    reference = audio.peak_normalize(audio.trim_or_pad(originals, features.n_samples))
    feats = features.encode(originals)
    ae.eval()
    decoded = {"griffin_lim": features.decode(feats), "ae": features.decode(ae(feats))}
    if vae is not None:
        vae.eval()
        decoded["vae"] = features.decode(ae.decode(vae.decode(vae.encode(ae.encode(feats))[0])))
    result: dict[str, float | int] = {
        f"spectral_distance_{kind}": float(audio.spectral_distance(reference, x)) for kind, x in decoded.items()
    }
    others = torch.roll(torch.arange(n_notes), 1)
    result["spectral_distance_shuffled"] = float(audio.spectral_distance(reference, decoded["ae"][others]))
    result["rms_db_originals"] = float(audio.rms_db(reference).mean())
    if vae is not None:
        prior = features.decode(ae.decode(vae.sample(n_notes, torch.Generator().manual_seed(seed))))
        levels = audio.rms_db(prior)
        result |= {"rms_db_prior_mean": float(levels.mean()), "rms_db_prior_min": float(levels.min())}
    return result | {"check_notes": n_notes}


def _rounded(values: dict) -> dict:
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in values.items()}


def train_spectrogram_ae(
    ae_config: SpectrogramAEConfig | None = None,
    epochs: int = SPEC_AE_EPOCHS,
    checkpoint_path: str | Path | None = None,
    size: str | int = "mini",
    patience: int | None = SPEC_AE_PATIENCE,
    lr: float = SPEC_AE_LR,
    seed: int = SPEC_SEED,
    live_plot: bool | str = "auto",
    progress: bool = True,
) -> tuple[SpectrogramAE, dict]:
    """Stage 1: train the autoencoder on NSynth-mini train features (MSE), choosing the epoch on valid.

    Adam at ``lr``, batches of 16, the learning rate annealed to 0 over ``epochs`` (cosine).

    The model keeps its best validation epoch. The measurements: ``train_mse``, ``valid_mse``,
    ``test_mse`` (eval mode, per feature bin), ``overfit_ratio`` (``valid_mse / train_mse``, source
    003's "overfit"), ``feature_time_s``, ``train_time_s``, ``epochs_run``, ``best_epoch``,
    ``seconds_per_epoch``, ``parameters``, ``train_notes``, ``features`` (the settings), the
    :func:`audio_check` of the test split (without ``vae``) and ``history``.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    ae_config = SpectrogramAEConfig() if ae_config is None else ae_config
    features = SpectrogramFeatures()
    start = time.perf_counter()
    train, valid, test = (nsynth_features(split, size=size, features=features) for split in ("train", "valid", "test"))
    feature_seconds = time.perf_counter() - start
    config.seed_everything(seed)
    model = build_spectrogram_ae(ae_config)
    loader = DataLoader(train, batch_size=SPEC_AE_BATCH, shuffle=True, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)  # lr from `lr` down to 0
    start = time.perf_counter()
    history = fit(
        model, loader, ae_loss, optimizer, valid_loader=DataLoader(valid, batch_size=128), epochs=epochs,
        patience=patience, scheduler=schedule, live_plot=live_plot, progress=progress, restore_best=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    splits = {"train": train, "valid": valid, "test": test}
    mse = {split: describe_ae(model, data)["mse"] for split, data in splits.items()}
    metrics = {
        "train_mse": mse["train"],
        "valid_mse": mse["valid"],
        "test_mse": mse["test"],
        "overfit_ratio": mse["valid"] / mse["train"],
        f"test_mse_first_{SPEC_FIRST}": describe_ae(model, test.select(slice(SPEC_FIRST)))["mse"],
        "feature_time_s": round(feature_seconds, 1),
        "train_time_s": round(seconds, 1),
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "seconds_per_epoch": round(seconds / len(history.epochs), 2),
        "parameters": parameter_count(model),
        "train_notes": len(train),
        "features": features.to_dict(),
        **_rounded(audio_check(model, features=features, size=size, seed=seed)),
        "history": {key: history.series(key) for key in ("train_loss", "valid_loss")},
    }
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, ae_config.to_dict(), metrics)
    return model, metrics


def train_latent_vae(
    ae: SpectrogramAE,
    vae_config: LatentVAEConfig | None = None,
    epochs: int = SPEC_VAE_EPOCHS,
    checkpoint_path: str | Path | None = None,
    size: str | int = "mini",
    patience: int | None = SPEC_VAE_PATIENCE,
    lr: float = SPEC_VAE_LR,
    beta: float = 1.0,
    seed: int = SPEC_SEED,
    extra_metrics: dict | None = None,
    live_plot: bool | str = "auto",
    progress: bool = True,
) -> tuple[LatentVAE, dict]:
    """Stage 2: pre-encode every note with the frozen autoencoder ``ae``, then train the VAE core on the codes.

    The measurements: :func:`describe_latent_vae` of train, valid and test (keys prefixed), with
    ``feature_mse`` through the whole model; ``overfit_ratio`` (``valid_feature_mse /
    train_feature_mse``: the ELBO itself can be negative, so no ratio of it); ``encode_time_s``
    (pre-encoding all splits), ``train_time_s``, ``epochs_run``, ``best_epoch``, ``parameters``;
    :func:`audio_check` of the test split; ``history``; and ``extra_metrics`` (e.g. which
    autoencoder file the codes came from).

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    vae_config = LatentVAEConfig(code_dim=ae.config.code_dim) if vae_config is None else vae_config
    start = time.perf_counter()
    data = {split: nsynth_features(split, size=size) for split in ("train", "valid", "test")}
    codes = {split: pre_encode(ae, notes) for split, notes in data.items()}
    encode_seconds = time.perf_counter() - start
    config.seed_everything(seed)
    model = build_latent_vae(vae_config)
    loader = DataLoader(codes["train"], batch_size=SPEC_VAE_BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    history = fit(
        model, loader, functools.partial(latent_vae_loss, beta=beta), optimizer,
        valid_loader=DataLoader(codes["valid"], batch_size=512), epochs=epochs, patience=patience,
        live_plot=live_plot, progress=progress, restore_best=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    measured = {}
    for split in ("train", "valid", "test"):
        both = NoteTensors(codes[split].tensors | {"features": data[split].tensors["features"]}, codes[split].note_str)
        measured |= {f"{split}_{key}": value for key, value in describe_latent_vae(model, both, ae).items()}
    first = NoteTensors(codes["test"].tensors | {"features": data["test"].tensors["features"]}, codes["test"].note_str)
    first = describe_latent_vae(model, first.select(slice(SPEC_FIRST)), ae)
    metrics = {
        **measured,
        "overfit_ratio": measured["valid_feature_mse"] / measured["train_feature_mse"],
        **{f"test_{key}_first_{SPEC_FIRST}": first[key] for key in ("elbo_loss", "feature_mse")},
        "sigma": float(torch.exp(0.5 * model.output_logvar.detach())),
        "encode_time_s": round(encode_seconds, 1),
        "train_time_s": round(seconds, 1),
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "parameters": parameter_count(model),
        "beta": beta,
        **_rounded(audio_check(ae, model, size=size, seed=seed)),
        **(extra_metrics or {}),
        "history": {key: history.series(key) for key in ("train_loss", "valid_loss")},
    }
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, vae_config.to_dict(), metrics)
    return model, metrics


@register_recipe(AE_CHECKPOINT)
def spec_ae_nsynth() -> Path:
    """Conv2D autoencoder on NSynth-mini spectrogram features, code size 64 (lesson 04, stage 1)."""
    path = config.checkpoint_dir() / f"{AE_CHECKPOINT}.pt"
    torch.set_num_threads(1)
    _, metrics = train_spectrogram_ae(checkpoint_path=path, live_plot=False, progress=False)
    print(
        f"{AE_CHECKPOINT}: feature MSE train {metrics['train_mse']:.5f}, valid {metrics['valid_mse']:.5f}, "
        f"test {metrics['test_mse']:.5f} ({metrics['epochs_run']} epochs, {metrics['train_time_s']} s)"
    )
    description = "Conv2D autoencoder of NSynth-mini STFT features (256x128 -> code 64), lesson 04 stage 1"
    register_checkpoint(AE_CHECKPOINT, path, f"python -m coursekit.train {AE_CHECKPOINT}", description)
    return path


@register_recipe(VAE_CHECKPOINT)
def spec_vae_nsynth() -> Path:
    """VAE core (latent size 6) on the codes of the spec_ae_nsynth autoencoder (lesson 04, stage 2)."""
    path = config.checkpoint_dir() / f"{VAE_CHECKPOINT}.pt"
    torch.set_num_threads(1)
    ae, _ = load_pretrained(AE_CHECKPOINT, build_spectrogram_ae)
    source = {"ae_checkpoint": AE_CHECKPOINT, "ae_sha256": list_pretrained()[AE_CHECKPOINT]["sha256"]}
    _, metrics = train_latent_vae(ae, checkpoint_path=path, extra_metrics=source, live_plot=False, progress=False)
    print(
        f"{VAE_CHECKPOINT}: valid ELBO loss {metrics['valid_elbo_loss']:.2f} nats, "
        f"{metrics['valid_active_units']} active units, {metrics['train_time_s']} s"
    )
    description = "VAE core on spec_ae_nsynth codes (64 -> latent 6), lesson 04 stage 2"
    register_checkpoint(VAE_CHECKPOINT, path, f"python -m coursekit.train {VAE_CHECKPOINT}", description)
    return path


# ----------------------------------------------------------------------------- lesson 07: piano-roll GRU-VAE
# Source 002: a GRU-VAE on two-hand piano rolls of Bach chorales (style 0) and folk tunes (style 1),
# BCE with the natural pos_weight, a style classifier on the latent means, style transfer along the
# direction between the style means. Measured on one CPU thread (see ROLL_EPOCHS for the figures).
from coursekit.data.pianoroll import PianoRolls  # noqa: E402
from coursekit.models.sequence import (  # noqa: E402
    PianoRollVAE,
    PianoRollVAEConfig,
    build_pianoroll_vae,
    calibrated_threshold,
    evaluate_reconstruction,
    f1_counts,
    f1_scores,
    latent_means,
    pianoroll_vae_loss,
    positive_weight,
    style_direction,
    style_transfer,
    train_style_classifier,
)

ROLL_CHECKPOINT = "pianoroll_vae"
ROLL_SEED = 0
ROLL_SPLIT = (0.8, 0.1, 0.1)  # fractions of each style's PIECES in train, valid, test
ROLL_WINDOW, ROLL_HOP, ROLL_TRANSPOSE = 64, 16, 3
ROLL_BATCH, ROLL_LR, ROLL_EPOCHS, ROLL_PATIENCE = 64, 2e-3, 24, 4
ROLL_CONFIG = PianoRollVAEConfig(hidden=128, latent_dim=32, decoder="parallel")
ROLL_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)  # decoding thresholds tried on valid
# Measured on one CPU thread with all 1,390 pieces (10,376 train windows), before choosing the above:
# an epoch takes ~22 s with hidden=128 and ~56 s with hidden=256. In the same 150 s, hidden=128 got
# the lower valid loss (7 epochs: 3,073 vs 3 epochs: 3,245 weighted nats per window); the
# autoregressive decoder got a much lower teacher-forced loss (2,021 in 5 epochs) but its free-running
# reconstructions were no better (best valid F1 0.28 vs 0.30 for parallel, both at threshold 0.9), so
# the parallel decoder is the default. The F1 figures are of those 150 s runs, not of the recipe.


def pianoroll_splits(
    max_pieces: int | None = None,
    transpose: int = ROLL_TRANSPOSE,
    seed: int = ROLL_SEED,
    root: str | Path | None = None,
) -> dict[str, Subset]:
    """Train, valid and test windows of both styles, split by PIECE so no piece is in two splits.

    Within each style the pieces are shuffled by ``seed`` and cut by ``ROLL_SPLIT``; every window
    of a piece goes where its piece goes (windows overlap, so a split by window would leak).

    Args:
        max_pieces: pieces per style (None: all, 331 chorales and 1,059 folk tunes).
        transpose: the train windows are transposed by up to this many semitones (call
            ``set_epoch`` on ``splits["train"].dataset`` for new shifts); valid and test never are.
        seed: chooses the split and the transpositions.
        root: the piano-roll cache folder (default ``config.data_dir() / "pianorolls"``).

    Returns:
        ``{"train", "valid", "test"}``: ``Subset``s of :class:`~coursekit.data.pianoroll.PianoRolls`
        windows (``ROLL_WINDOW`` steps every ``ROLL_HOP``).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    common = {"window": ROLL_WINDOW, "hop": ROLL_HOP, "root": root, "max_pieces": max_pieces, "seed": seed}
    shifted = PianoRolls(transpose=transpose, **common)
    plain = PianoRolls(transpose=0, **common)
    split_of = _piece_splits(plain.pieces, seed)
    indices: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for index, (number, _) in enumerate(plain.windows):
        indices[split_of[number]].append(index)
    return {name: Subset(shifted if name == "train" else plain, idx) for name, idx in indices.items()}


def _piece_splits(pieces: list[dict], seed: int) -> list[str]:
    """The split ("train", "valid" or "test") of each piece, by ``ROLL_SPLIT`` within each style."""
    split_of = [""] * len(pieces)
    generator = torch.Generator().manual_seed(seed)
    for style in dict.fromkeys(p["style"] for p in pieces):
        numbers = [i for i, p in enumerate(pieces) if p["style"] == style]
        if len(numbers) < 3:
            raise ValueError(
                f"only {len(numbers)} {style} piece(s): train, valid and test need at least 3 (use max_pieces >= 3)."
            )
        order = [numbers[i] for i in torch.randperm(len(numbers), generator=generator).tolist()]
        n_valid = max(1, round(ROLL_SPLIT[1] * len(order)))
        n_test = max(1, round(ROLL_SPLIT[2] * len(order)))
        for rank, number in enumerate(order):
            split_of[number] = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"
    return split_of


class EpochLoader:
    """A DataLoader over (a Subset of) :class:`PianoRolls` that calls ``set_epoch`` before each pass.

    :func:`coursekit.train.fit` iterates its loader once per epoch; this makes each epoch draw new
    transpositions. Epochs count from 0.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """

    def __init__(self, loader: DataLoader) -> None:
        self.loader, self.epoch = loader, 0
        rolls = loader.dataset.dataset if isinstance(loader.dataset, Subset) else loader.dataset
        if not hasattr(rolls, "set_epoch"):
            raise TypeError(f"EpochLoader needs a loader over PianoRolls (or a Subset of one), got {type(rolls)}.")
        self.rolls = rolls

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.rolls.set_epoch(self.epoch)
        self.epoch += 1
        return iter(self.loader)


def pianoroll_loaders(splits: dict[str, Subset], batch_size: int = ROLL_BATCH, seed: int = ROLL_SEED) -> dict:
    """Loaders of :func:`pianoroll_splits`: shuffled train (new transpositions each epoch), plain valid and test.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    shuffle = torch.Generator().manual_seed(seed)
    train = DataLoader(splits["train"], batch_size=batch_size, shuffle=True, generator=shuffle)
    return {
        "train": EpochLoader(train),
        "valid": DataLoader(splits["valid"], batch_size=256),
        "test": DataLoader(splits["test"], batch_size=256),
    }


def _stacked_rolls(dataset) -> torch.Tensor:
    """All the rolls of a dataset of PianoRolls items: Tensor [n, steps, 102]."""
    return torch.stack([item["roll"] for item in dataset])


def frequency_baseline(train_rolls: torch.Tensor, rolls: torch.Tensor) -> dict[str, float]:
    """F1 of a roll that holds each column on when it sounds often in training, the same at every step.

    The column frequencies (fraction of training steps a column sounds) are thresholded at the
    value that gives the best F1 on the training rolls; the same guess is then scored on ``rolls``.
    An all-zero guess scores 0.

    Args:
        train_rolls: Tensor [n, steps, 102], the training windows.
        rolls: Tensor [m, steps, 102], the windows to score the guess on.

    Returns:
        ``{"precision", "recall", "f1", "threshold"}``.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    frequency = train_rolls.mean(dim=(0, 1))  # [102]

    def scores(guess_columns: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        guess = guess_columns.expand_as(target)
        return f1_scores(**f1_counts(guess, target))

    candidates = frequency.unique()
    best = max(candidates.tolist(), key=lambda t: scores(frequency >= t, train_rolls)["f1"])
    return scores(frequency >= best, rolls) | {"threshold": best}


@torch.no_grad()
def describe_pianoroll_vae(
    model: PianoRollVAE, loader: DataLoader, pos_weight: float, threshold: float = 0.5
) -> dict[str, float | int]:
    """Measure a piano-roll VAE on ``loader`` in eval mode, with one posterior sample per window (seed 0).

    Returns ``{"loss", "recon", "kl"}`` (weighted nats per window, as in training), the cell-level
    ``precision``, ``recall``, ``f1``, ``density`` and ``predicted_density`` of free-running
    reconstructions from the means decoded at ``threshold`` (:func:`evaluate_reconstruction`),
    ``f1_at_0.5`` (the same at threshold 0.5) and ``active_units`` of the means.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    model.eval()
    generator = torch.Generator().manual_seed(0)
    totals, n = {"loss": 0.0, "recon": 0.0, "kl": 0.0}, 0
    for batch in loader:
        parts = pianoroll_vae_loss(model, batch, pos_weight=pos_weight, generator=generator)
        for key in totals:
            totals[key] += float(parts[key]) * len(batch["roll"])
        n += len(batch["roll"])
    mu, _ = latent_means(model, loader)
    return (
        {key: value / n for key, value in totals.items()}
        | evaluate_reconstruction(model, loader, threshold)
        | {"f1_at_0.5": evaluate_reconstruction(model, loader, 0.5)["f1"], "active_units": active_units(mu)[0]}
    )


def _pieces_of(split: Subset) -> list[str]:
    """The corpus name of the piece of each window of a :func:`pianoroll_splits` split."""
    rolls = split.dataset
    return [rolls.pieces[rolls.windows[index][0]]["piece"] for index in split.indices]


def _untransposed(splits: dict[str, Subset], name: str) -> Subset:
    """The windows of split ``name`` without transposition (the valid split's dataset never transposes)."""
    return Subset(splits["valid"].dataset, splits[name].indices)


@torch.no_grad()
def style_check(
    model: PianoRollVAE, splits: dict[str, Subset], threshold: float = 0.5, seed: int = ROLL_SEED
) -> tuple[dict[str, float], torch.Tensor]:
    """The style classifier and style transfer of source 002, measured on pieces the VAE never saw.

    - the direction = folk mean minus chorale mean of the train windows' latent means;
    - a :class:`StyleClassifier` is trained on the valid windows' latent means; ``style_accuracy``
      is its accuracy on the quarter of valid pieces it did not train on, ``style_accuracy_test``
      on every test window;
    - each test window is moved to the other style (chorale ``+direction``, folk ``-direction``)
      and decoded. ``transfer_latent_flip``: fraction whose moved latent the classifier calls the
      target style (nearly guaranteed by construction); ``transfer_flip``: fraction whose decoded
      roll, encoded again, it calls the target style (the real test); ``transfer_kept_f1``: F1
      of the decoded roll against the original (how much of the window survives); and the
      fraction of cells on in the left hand before and after, per direction. Decoding uses ``threshold``.

    Returns:
        ``(metrics, direction)``: the figures above as floats, and the direction Tensor [latent_dim].

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    plain = {name: DataLoader(_untransposed(splits, name), batch_size=256) for name in splits}
    mu_train, styles_train = latent_means(model, plain["train"])
    direction = style_direction(mu_train, styles_train)
    mu_valid, styles_valid = latent_means(model, plain["valid"])
    classifier, accuracy = train_style_classifier(mu_valid, styles_valid, groups=_pieces_of(splits["valid"]), seed=seed)
    mu_test, styles_test = latent_means(model, plain["test"])
    rolls = _stacked_rolls(splits["test"])
    strength = 1.0 - 2.0 * styles_test.float()  # chorale (0) -> +1, folk (1) -> -1
    target = 1 - styles_test
    moved_rolls, moved = style_transfer(
        model, None, strength[:, None] * direction, source_mu=mu_test, threshold=threshold
    )
    again, _ = model.encode(moved_rolls)
    left = slice(51, 102)
    out = {
        "style_accuracy": accuracy,
        "style_accuracy_test": float((classifier.predict(mu_test) == styles_test).float().mean()),
        "transfer_latent_flip": float((classifier.predict(moved) == target).float().mean()),
        "transfer_flip": float((classifier.predict(again) == target).float().mean()),
        "transfer_kept_f1": f1_scores(**f1_counts(moved_rolls, rolls))["f1"],
        "style_direction_norm": float(direction.norm()),
    }
    for style, name in enumerate(("chorale", "folk")):
        chosen = styles_test == style
        out[f"{name}_left_density"] = float(rolls[chosen][..., left].mean())
        out[f"{name}_moved_left_density"] = float(moved_rolls[chosen][..., left].mean())
        out[f"{name}_transfer_flip"] = float((classifier.predict(again[chosen]) == target[chosen]).float().mean())
    return out, direction


def choose_threshold(
    model: PianoRollVAE, loader: DataLoader, thresholds: tuple[float, ...] = ROLL_THRESHOLDS
) -> tuple[float, dict[float, float]]:
    """The decoding threshold with the best reconstruction F1 on ``loader``, and the F1 of each one tried.

    A decoder trained with the natural ``pos_weight`` overstates probabilities (see
    :func:`~coursekit.models.sequence.calibrated_threshold`), so 0.5 turns on far too many cells;
    choose the threshold on the validation windows, never on the test windows.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    scores = {t: evaluate_reconstruction(model, loader, t)["f1"] for t in thresholds}
    return max(scores, key=scores.get), scores


def train_pianoroll_vae(
    vae_config: PianoRollVAEConfig = ROLL_CONFIG,
    epochs: int = ROLL_EPOCHS,
    max_pieces: int | None = None,
    checkpoint_path: str | Path | None = None,
    patience: int | None = ROLL_PATIENCE,
    lr: float = ROLL_LR,
    transpose: int = ROLL_TRANSPOSE,
    seed: int = ROLL_SEED,
    time_budget_s: float | None = None,
    live_plot: bool | str = "auto",
    progress: bool = True,
) -> tuple[PianoRollVAE, dict]:
    """Train a piano-roll GRU-VAE on both styles and return it with its measurements.

    BCE with the natural ``pos_weight`` of the train windows (:func:`positive_weight`) plus the KL
    (beta 1); Adam; early stopping on the valid loss; the model keeps the best epoch's weights.
    After training, the decoding threshold with the best valid F1 is chosen among
    ``ROLL_THRESHOLDS`` (``threshold``, and ``valid_f1_by_threshold``). Measurements with it:
    :func:`describe_pianoroll_vae` on valid and test (``valid_*``, ``test_*``), :func:`style_check`,
    the column-frequency baseline's F1 (``baseline_valid_f1``, ``baseline_test_f1``; an all-zero roll
    scores 0); and ``pos_weight``, ``calibrated_threshold``, ``epochs_run``, ``best_epoch``,
    ``train_time_s``, ``train_windows``, ``parameters``, ``history`` and ``style_direction`` (a list
    of floats: folk mean minus chorale mean of the train windows' latent means).

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    config.seed_everything(seed)
    splits = pianoroll_splits(max_pieces, transpose, seed)
    loaders = pianoroll_loaders(splits, seed=seed)
    pos_weight = positive_weight(splits["train"])
    model = build_pianoroll_vae(vae_config)

    def loss_fn(vae: PianoRollVAE, batch: dict) -> dict[str, torch.Tensor]:
        return pianoroll_vae_loss(vae, batch, pos_weight=pos_weight)

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    history = fit(
        model, loaders["train"], loss_fn, optimizer, valid_loader=loaders["valid"], epochs=epochs,
        patience=patience, time_budget_s=time_budget_s, live_plot=live_plot, progress=progress, restore_best=True,
    )
    seconds = time.perf_counter() - start
    threshold, by_threshold = choose_threshold(model, loaders["valid"])
    train_rolls = _stacked_rolls(_untransposed(splits, "train"))
    style, direction = style_check(model, splits, threshold, seed)
    metrics = {
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "stop_reason": history.stop_reason,
        "train_time_s": round(seconds, 1),
        "train_windows": len(splits["train"]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "pos_weight": pos_weight,
        "calibrated_threshold": calibrated_threshold(pos_weight),
        "threshold": threshold,
        "valid_f1_by_threshold": {str(t): f1 for t, f1 in by_threshold.items()},
        **{f"valid_{k}": v for k, v in describe_pianoroll_vae(model, loaders["valid"], pos_weight, threshold).items()},
        **{f"test_{k}": v for k, v in describe_pianoroll_vae(model, loaders["test"], pos_weight, threshold).items()},
        "baseline_valid_f1": frequency_baseline(train_rolls, _stacked_rolls(splits["valid"]))["f1"],
        "baseline_test_f1": frequency_baseline(train_rolls, _stacked_rolls(splits["test"]))["f1"],
        **style,
        "style_direction": direction.tolist(),
        "history": {key: history.series(key) for key in ("train_loss", "valid_loss", "valid_recon", "valid_kl")},
    }
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, vae_config.to_dict(), metrics)
    return model, metrics


@register_recipe(ROLL_CHECKPOINT)
def pianoroll_vae_recipe() -> Path:
    """GRU-VAE on two-hand piano rolls of chorales and folk tunes, parallel decoder, latent 32 (lesson 07)."""
    path = config.checkpoint_dir() / f"{ROLL_CHECKPOINT}.pt"
    torch.set_num_threads(1)  # the same arithmetic on every machine, and no oversubscription
    _, metrics = train_pianoroll_vae(checkpoint_path=path, live_plot=False, progress=False)
    print(
        f"{ROLL_CHECKPOINT}: valid F1 {metrics['valid_f1']:.3f} at threshold {metrics['threshold']} "
        f"(baseline {metrics['baseline_valid_f1']:.3f}), style accuracy {metrics['style_accuracy']:.3f}, "
        f"transfer flip {metrics['transfer_flip']:.3f}, {metrics['epochs_run']} epochs, {metrics['train_time_s']} s"
    )
    description = "GRU-VAE on piano-roll windows (64 steps x 102), chorales + folk, parallel decoder, latent 32"
    register_checkpoint(ROLL_CHECKPOINT, path, f"python -m coursekit.train {ROLL_CHECKPOINT}", description)
    return path
