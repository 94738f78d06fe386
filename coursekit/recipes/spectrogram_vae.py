"""Lesson 04's recipes: the spectrogram VAE in two stages, as in source 003, and the check that decodes it to audio.

Stage 1 (``spec_ae_nsynth``) trains the Conv2D autoencoder on NSynth-mini features; stage 2
(``spec_vae_nsynth``) trains the VAE core on the codes that autoencoder gives. Measured on one
CPU thread: features of the 1,140 train notes take ~3 s, an autoencoder epoch ~14 s, so
``SPEC_AE_EPOCHS`` fits in about ten minutes; the VAE core takes ~15 s.

Lesson: lessons/04_spectrogram_vae.ipynb
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from coursekit import audio, config
from coursekit.checkpoints import load_pretrained, save_checkpoint, sha256_of
from coursekit.data.notes import NoteTensors, nsynth_features, pre_encode
from coursekit.data.nsynth import NSynthMini
from coursekit.features import SpectrogramFeatures
from coursekit.metrics import active_units
from coursekit.models import parameter_count
from coursekit.models.code_vae import CodeVAE, CodeVAEConfig, build_code_vae, code_vae_loss
from coursekit.models.spectrogram import (
    SpectrogramAE,
    SpectrogramAEConfig,
    SpectrogramVAE,
    ae_loss,
    build_spectrogram_ae,
)
from coursekit.recipes.registry import checkpoint_in_use, load_or_train, register_recipe
from coursekit.train import fit

AE_CHECKPOINT = "spec_ae_nsynth"
VAE_CHECKPOINT = "spec_vae_nsynth"


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
def describe_code_vae(vae: CodeVAE, codes: NoteTensors, ae: SpectrogramAE | None = None) -> dict[str, float | int]:
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
    parts = code_vae_loss(vae, {"code": code}, generator=torch.Generator().manual_seed(0))
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
    vae: CodeVAE | None = None,
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
    features = ae.config.features if features is None else features
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
    ``seconds_per_epoch``, ``parameters``, ``train_notes``, the
    :func:`audio_check` of the test split (without ``vae``) and ``history``.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    ae_config = SpectrogramAEConfig() if ae_config is None else ae_config
    features = ae_config.features
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
        **_rounded(audio_check(model, features=features, size=size, seed=seed)),
        "history": {key: history.series(key) for key in ("train_loss", "valid_loss")},
    }
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, ae_config.to_dict(), metrics)
    return model, metrics


def train_code_vae(
    ae: SpectrogramAE,
    vae_config: CodeVAEConfig | None = None,
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
) -> tuple[CodeVAE, dict]:
    """Stage 2: pre-encode every note with the frozen autoencoder ``ae``, then train the VAE core on the codes.

    The measurements: :func:`describe_code_vae` of train, valid and test (keys prefixed), with
    ``feature_mse`` through the whole model; ``overfit_ratio`` (``valid_feature_mse /
    train_feature_mse``: the ELBO itself can be negative, so no ratio of it); ``encode_time_s``
    (pre-encoding all splits), ``train_time_s``, ``epochs_run``, ``best_epoch``, ``parameters``;
    :func:`audio_check` of the test split; ``history``; and ``extra_metrics`` (e.g. which
    autoencoder file the codes came from).

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    vae_config = CodeVAEConfig(code_dim=ae.config.code_dim) if vae_config is None else vae_config
    start = time.perf_counter()
    splits = ("train", "valid", "test")
    data = {split: nsynth_features(split, size=size, features=ae.config.features) for split in splits}
    codes = {split: pre_encode(ae.eval().encode, notes) for split, notes in data.items()}
    encode_seconds = time.perf_counter() - start
    config.seed_everything(seed)
    model = build_code_vae(vae_config)
    loader = DataLoader(codes["train"], batch_size=SPEC_VAE_BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    history = fit(
        model, loader, functools.partial(code_vae_loss, beta=beta), optimizer,
        valid_loader=DataLoader(codes["valid"], batch_size=512), epochs=epochs, patience=patience,
        live_plot=live_plot, progress=progress, restore_best=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    measured = {}
    for split in ("train", "valid", "test"):
        both = NoteTensors(codes[split].tensors | {"features": data[split].tensors["features"]}, codes[split].note_str)
        measured |= {f"{split}_{key}": value for key, value in describe_code_vae(model, both, ae).items()}
    first = NoteTensors(codes["test"].tensors | {"features": data["test"].tensors["features"]}, codes["test"].note_str)
    first = describe_code_vae(model, first.select(slice(SPEC_FIRST)), ae)
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


@register_recipe(AE_CHECKPOINT, "Conv2D autoencoder of NSynth-mini STFT features (256x128 -> code 64), "
                 "lesson 04 stage 1")
def spec_ae_nsynth(path: Path, ship: bool) -> None:
    """Train stage 1 and write it to ``path``."""
    _, metrics = train_spectrogram_ae(checkpoint_path=path, live_plot=False, progress=False)
    print(
        f"{AE_CHECKPOINT}: feature MSE train {metrics['train_mse']:.5f}, valid {metrics['valid_mse']:.5f}, "
        f"test {metrics['test_mse']:.5f} ({metrics['epochs_run']} epochs, {metrics['train_time_s']} s)"
    )


@register_recipe(VAE_CHECKPOINT, "VAE core on spec_ae_nsynth codes (64 -> latent 6), lesson 04 stage 2")
def spec_vae_nsynth(path: Path, ship: bool) -> None:
    """Train stage 2 on the codes of the autoencoder in use (the shipped one when shipping) and write it to ``path``."""
    if ship:
        ae, _ = load_pretrained(AE_CHECKPOINT, build_spectrogram_ae)
    else:
        ae, _ = load_or_train(AE_CHECKPOINT, build_spectrogram_ae, verbose=False)
    source = {"ae_checkpoint": AE_CHECKPOINT, "ae_sha256": sha256_of(checkpoint_in_use(AE_CHECKPOINT, ship))}
    _, metrics = train_code_vae(ae, checkpoint_path=path, extra_metrics=source, live_plot=False, progress=False)
    print(
        f"{VAE_CHECKPOINT}: valid ELBO loss {metrics['valid_elbo_loss']:.2f} nats, "
        f"{metrics['valid_active_units']} active units, {metrics['train_time_s']} s"
    )


def load_spectrogram_vae(map_location: str | torch.device = "cpu", verbose: bool = True) -> SpectrogramVAE:
    """Both stages in eval mode: the student's own runs where present, else the shipped checkpoints.

    Warns when the VAE core was trained on the codes of another autoencoder file (its recorded
    SHA-256 differs from the autoencoder loaded): its latents would decode badly; retrain it.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    ae, _ = load_or_train(AE_CHECKPOINT, build_spectrogram_ae, map_location=map_location, verbose=verbose)
    vae, vae_ckpt = load_or_train(VAE_CHECKPOINT, build_code_vae, map_location=map_location, verbose=verbose)
    trained_on = vae_ckpt["metrics"].get("ae_sha256")
    if trained_on is not None and trained_on != sha256_of(checkpoint_in_use(AE_CHECKPOINT)):
        warnings.warn(
            f"{VAE_CHECKPOINT} was trained on the codes of another {AE_CHECKPOINT} file: its latents may decode "
            f"badly. Retrain it: `python -m coursekit train {VAE_CHECKPOINT}`.",
            stacklevel=2,
        )
    return SpectrogramVAE(ae, vae).eval()
