"""Lesson 08's recipes: the models compared on NSynth-mini and the family classifier that judges them.

Data (:func:`note_clips`): NSynth-mini notes cut to their first ``seconds`` (peak 0.9), with their
family index and MIDI key. Training uses the train split's instruments only; every figure of the
lesson is measured on the test split, whose 11 instruments (one per family) no model heard.

``family_classifier``: :class:`~coursekit.models.family.FamilyClassifier` on random one-second windows
of the first two seconds of each train note (a random gain of -12 to 0 dB, so level alone does not
name a family), Adam 1e-3 with a cosine to 5 %, batch 32. Its accuracy on the unseen test
instruments says how far its embedding generalises; chance is 1/11.

``cvae``: :class:`~coursekit.models.cvae.ConditionalVAE` on lesson 04's features of the first second
of each train note (:data:`FEATURES`), conditioned on family and key, Adam 1e-3 with a cosine to 5 %,
batch 32, ``CVAE_EPOCHS`` epochs.

``gan_wgan`` and ``gan_smoothed``: :class:`~coursekit.models.gan.GAN` on the same features, Adam
1e-4 (betas 0.5, 0.9) for both players, batch 16, with source 001's exponential decay of the learning rate
(x 0.9995 per generator step); WGAN-GP with 5 critic steps per generator step, the smoothed-label
GAN with one.

``frame_lstm``: :class:`~coursekit.models.frame_lstm.FrameLSTM` on every (16 frames, next frame) pair
of the train notes' features, batch 64, Adam 1e-3 with a cosine to 5 %, ``LSTM_STEPS`` steps; its
one-step error on the test notes is reported beside the copy-the-last-frame baseline.

``wavenet_d5`` and ``wavenet_d3``: :class:`~coursekit.models.wavenet.WaveNetAE` with the decoder
dilations source 001 compared, on random 2,048-sample windows of the first 1.5 s of the train notes,
batch 8, Adam 1e-3, epochs of 50 steps, the learning rate halved when the validation loss has not
improved for 2 epochs and training stopped after 4 (the shared loop's plateau schedule and early
stopping), at most ``WAVENET_STEPS`` steps; validation on the first 2,048 samples of 32 valid notes.

Lesson: lessons/08_model_comparison.ipynb
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from coursekit import config
from coursekit.checkpoints import save_checkpoint
from coursekit.data.crops import RandomCrops
from coursekit.data.notes import nsynth_features
from coursekit.data.nsynth import FAMILIES, SR, NSynthMini
from coursekit.features import SpectrogramFeatures
from coursekit.models import parameter_count
from coursekit.models.cvae import ConditionalVAE, ConditionalVAEConfig, build_conditional_vae, cvae_loss
from coursekit.models.family import FamilyClassifier, FamilyClassifierConfig, build_family_classifier, family_loss
from coursekit.models.frame_lstm import FrameLSTM, FrameLSTMConfig, build_frame_lstm, frame_lstm_loss, frame_windows
from coursekit.models.gan import GAN, GANConfig, build_gan, critic_loss, generator_loss
from coursekit.models.wavenet import WaveNetAE, WaveNetAEConfig, build_wavenet_ae, wavenet_loss
from coursekit.recipes.registry import register_recipe
from coursekit.train import fit

CLASSIFIER_SEED, CLASSIFIER_BATCH, CLASSIFIER_LR, CLASSIFIER_EPOCHS = 0, 32, 1e-3, 40
FEATURES = SpectrogramFeatures(duration=1.0, n_frames=64)  # lesson 04's features of the first second: [1, 256, 64]
CVAE_SEED, CVAE_BATCH, CVAE_LR, CVAE_EPOCHS = 0, 32, 1e-3, 60
GAN_SEED, GAN_BATCH, GAN_LR, GAN_BETAS, GAN_DECAY = 0, 16, 1e-4, (0.5, 0.9), 0.9995  # decay: per generator step
LSTM_SEED, LSTM_BATCH, LSTM_LR, LSTM_STEPS, LSTM_FRAMES = 0, 64, 1e-3, 2000, 63  # 63 frames hold the 1 s note
WAVENET_SEED, WAVENET_BATCH, WAVENET_CROP, WAVENET_LR, WAVENET_STEPS = 0, 8, 2048, 1e-3, 1000
WAVENET_DILATIONS = {"wavenet_d5": (1, 2, 4, 8, 16), "wavenet_d3": (1, 4, 16)}  # source 001's two settings
GAN_STEPS, GAN_N_CRITIC = {"wgan-gp": 1000, "smoothed": 3000}, {"wgan-gp": 5, "smoothed": 1}


def note_clips(split: str, seconds: float = 1.0, size: str | int = "mini") -> dict[str, torch.Tensor]:
    """NSynth-mini notes of ``split``, their first ``seconds``, each peak-normalised to 0.9.

    Returns:
        ``{"audio": Tensor [n, 1, seconds * 16000], "family": int64 [n] (index into FAMILIES),
        "pitch": int64 [n] (MIDI key), "instrument": int64 [n]}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    data = NSynthMini(split, size=size)
    clips = torch.stack([data[i]["audio"][..., : round(seconds * SR)] for i in range(len(data))])
    peak = clips.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
    return {"audio": clips / peak * 0.9,
            **{key: torch.tensor([e[f"{name}"] for e in data.examples]) for key, name in
               (("family", "instrument_family"), ("pitch", "pitch"), ("instrument", "instrument"))}}  # fmt: skip


class _RandomWindows(Dataset):
    """Random one-second windows of clips, with a random gain, and their families (one epoch = one pass)."""

    def __init__(self, clips: dict[str, torch.Tensor], seed: int) -> None:
        self.audio, self.family = clips["audio"], clips["family"]
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        start = int(torch.randint(0, self.audio.shape[-1] - SR + 1, (1,), generator=self.generator))
        gain = 10 ** (-12 * float(torch.rand(1, generator=self.generator)) / 20)
        return {"audio": self.audio[i, :, start : start + SR] * gain, "family": self.family[i]}


def accuracy(model: FamilyClassifier, clips: dict[str, torch.Tensor]) -> float:
    """Share of ``clips["audio"]`` whose predicted family is ``clips["family"]``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    return float((model.predict(clips["audio"]) == clips["family"]).float().mean())


def train_family_classifier(
    model_config: FamilyClassifierConfig | None = None, epochs: int = CLASSIFIER_EPOCHS, seed: int = CLASSIFIER_SEED,
    size: str | int = "mini", live_plot: bool | str = "auto", progress: bool = True,
) -> tuple[FamilyClassifier, dict]:  # fmt: skip
    """Train the family classifier on the train instruments and measure it on the unseen test instruments.

    Returns:
        ``(model, metrics)``, metrics ``{"test_accuracy", "valid_accuracy", "chance", "confusion"
        (11 x 11 list, rows true families), "parameters", "train_seconds", ...}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    config.seed_everything(seed)
    train, valid, test = note_clips("train", 2.0, size), note_clips("valid", 1.0, size), note_clips("test", 1.0, size)
    model = build_family_classifier(model_config)
    loader = DataLoader(_RandomWindows(train, seed), batch_size=CLASSIFIER_BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    valid_loader = DataLoader([{"audio": a, "family": f} for a, f in zip(valid["audio"], valid["family"], strict=True)],
                              batch_size=64)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=CLASSIFIER_LR)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine(epochs))
    start = time.perf_counter()
    history = fit(model, loader, family_loss, optimizer, valid_loader=valid_loader, epochs=epochs, scheduler=schedule,
                  live_plot=live_plot, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    predicted = model.predict(test["audio"])
    confusion = torch.zeros(len(FAMILIES), len(FAMILIES), dtype=torch.long)
    confusion.index_put_((test["family"], predicted), torch.ones_like(predicted), accumulate=True)
    model.eval()
    return model, {
        "test_accuracy": round(float((predicted == test["family"]).float().mean()), 4),
        "valid_accuracy": round(accuracy(model, valid), 4),
        "chance": round(1 / len(FAMILIES), 4),
        "confusion": confusion.tolist(),
        "parameters": parameter_count(model),
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
        **_machine(),
        "history": history.epochs,
    }


@register_recipe("family_classifier", "instrument-family classifier on log-mel, NSynth-mini train instruments, "
                 f"{CLASSIFIER_EPOCHS} epochs (lesson 08's judge and embedding)")  # fmt: skip
def family_classifier(path: Path, ship: bool) -> None:
    model, metrics = train_family_classifier(live_plot=False)
    save_checkpoint(path, model, model.config, metrics)


def _machine() -> dict:
    return {"torch_threads": torch.get_num_threads(),
            "machine": f"{platform.machine()}, {os.cpu_count()} logical cores, torch {torch.__version__}"}  # fmt: skip


def _cosine(epochs: int):
    return lambda epoch: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, epoch / epochs)))


def train_cvae(
    model_config: ConditionalVAEConfig | None = None, epochs: int = CVAE_EPOCHS, seed: int = CVAE_SEED,
    size: str | int = "mini", live_plot: bool | str = "auto", progress: bool = True,
) -> tuple[ConditionalVAE, dict]:  # fmt: skip
    """Train the conditional VAE on the train notes' features; report its negative ELBO on the test notes.

    Returns:
        ``(model, metrics)``, metrics ``{"test_nelbo", "test_recon", "test_kl" (nats per note),
        "parameters", "train_seconds", "history", ...}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    config.seed_everything(seed)
    train, test = nsynth_features("train", size, FEATURES), nsynth_features("test", size, FEATURES)
    model = build_conditional_vae(model_config)
    loader = DataLoader(train, batch_size=CVAE_BATCH, shuffle=True, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=CVAE_LR)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine(epochs))
    start = time.perf_counter()
    history = fit(model, loader, cvae_loss, optimizer, valid_loader=DataLoader(test, batch_size=64), epochs=epochs,
                  scheduler=schedule, live_plot=live_plot, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    last = history.epochs[-1]
    model.eval()
    return model, {"test_nelbo": round(last["valid_loss"], 2), "test_recon": round(last["valid_recon"], 2),
                   "test_kl": round(last["valid_kl"], 2), "parameters": parameter_count(model), "epochs": epochs,
                   "train_seconds": round(seconds, 1), **_machine(), "history": history.epochs}  # fmt: skip


@register_recipe("cvae", "conditional VAE on 1 s spectrogram features, conditioned on family and key, "
                 f"{CVAE_EPOCHS} epochs (lesson 08)")  # fmt: skip
def cvae(path: Path, ship: bool) -> None:
    model, metrics = train_cvae(live_plot=False)
    save_checkpoint(path, model, model.config, metrics)


def train_gan(
    objective: str = "wgan-gp", steps: int | None = None, model_config: GANConfig | None = None, seed: int = GAN_SEED,
    size: str | int = "mini", log_every: int = 50, progress: bool = True,
) -> tuple[GAN, dict]:  # fmt: skip
    """Train a :class:`GAN` on the train notes' features, ``steps`` generator steps.

    Stops with ``FloatingPointError`` naming the step when a loss stops being finite.

    Returns:
        ``(model, metrics)``, metrics ``{"objective", "steps", "history": [{"step", "critic_loss",
        "generator_loss", "wasserstein" (WGAN-GP only), "lr", "time_s"}, ...], "parameters",
        "train_seconds", ...}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    steps = GAN_STEPS[objective] if steps is None else steps
    config.seed_everything(seed)
    images = nsynth_features("train", size, FEATURES).tensors["features"]
    model = build_gan(model_config)
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=GAN_LR, betas=GAN_BETAS)
    opt_c = torch.optim.Adam(model.critic.parameters(), lr=GAN_LR, betas=GAN_BETAS)
    decays = [torch.optim.lr_scheduler.ExponentialLR(opt, GAN_DECAY) for opt in (opt_g, opt_c)]
    g = torch.Generator().manual_seed(seed)
    history, start, log = [], time.perf_counter(), {}
    for step in range(1, steps + 1):
        for _ in range(GAN_N_CRITIC[objective]):
            real = images[torch.randint(len(images), (GAN_BATCH,), generator=g)]
            fake = model.generate(torch.randn(GAN_BATCH, model.config.z_dim, generator=g))
            parts = critic_loss(model, real, fake, objective, generator=g)
            opt_c.zero_grad()
            parts["loss"].backward()
            opt_c.step()
        loss_g = generator_loss(model, model.generate(torch.randn(GAN_BATCH, model.config.z_dim, generator=g)),
                                objective)  # fmt: skip
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        for decay in decays:
            decay.step()
        if not (math.isfinite(float(parts["loss"].detach())) and math.isfinite(float(loss_g.detach()))):
            raise FloatingPointError(f"the GAN's loss stopped being finite at generator step {step} (critic "
                                     f"{float(parts['loss'])}, generator {float(loss_g)}): lower GAN_LR.")  # fmt: skip
        for key, value in (("critic_loss", parts["loss"]), ("generator_loss", loss_g),
                           ("wasserstein", parts.get("wasserstein"))):  # fmt: skip
            if value is not None:
                log.setdefault(key, []).append(float(value.detach()))
        if step % log_every == 0 or step == steps:
            means = {k: round(sum(v) / len(v), 4) for k, v in log.items()}
            history.append({"step": step, **means, "lr": opt_g.param_groups[0]["lr"],
                            "time_s": round(time.perf_counter() - start, 1)})  # fmt: skip
            log = {}
            if progress:
                print(history[-1], flush=True)
    model.eval()
    return model, {"objective": objective, "steps": steps, "n_critic": GAN_N_CRITIC[objective],
                   "parameters": parameter_count(model), "train_seconds": round(time.perf_counter() - start, 1),
                   **_machine(), "history": history}  # fmt: skip


def _register_gan(name: str, objective: str) -> None:
    @register_recipe(name, f"GAN on 1 s spectrogram features, {objective}, {GAN_STEPS[objective]} generator steps "
                     "(lesson 08)")  # fmt: skip
    def train(path: Path, ship: bool) -> None:
        model, metrics = train_gan(objective)
        save_checkpoint(path, model, model.config, metrics)


_register_gan("gan_wgan", "wgan-gp")
_register_gan("gan_smoothed", "smoothed")


def train_frame_lstm(
    model_config: FrameLSTMConfig | None = None, steps: int = LSTM_STEPS, seed: int = LSTM_SEED,
    size: str | int = "mini", live_plot: bool | str = "auto", progress: bool = True,
) -> tuple[FrameLSTM, dict]:  # fmt: skip
    """Train the frame LSTM on the train notes; measure one-step prediction on the test notes.

    Returns:
        ``(model, metrics)``, metrics ``{"test_mse", "test_mae", "copy_last_mse" (predicting that the
        next frame equals the last one), "parameters", "train_seconds", "history", ...}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    config.seed_everything(seed)
    model = build_frame_lstm(model_config)
    window = model.config.window

    def pairs(split: str) -> list[dict]:
        windows, targets = frame_windows(nsynth_features(split, size, FEATURES).tensors["features"], window,
                                         LSTM_FRAMES)  # fmt: skip
        return [{"window": w, "next": t} for w, t in zip(windows, targets, strict=True)]

    train, test = pairs("train"), pairs("test")
    loader = DataLoader(train, batch_size=LSTM_BATCH, shuffle=True, generator=torch.Generator().manual_seed(seed))
    valid = DataLoader(test[::8], batch_size=256)  # every 8th test pair: 1/8 of the cost, the same notes
    optimizer = torch.optim.Adam(model.parameters(), lr=LSTM_LR)
    epochs = math.ceil(steps / len(loader))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine(epochs))
    start = time.perf_counter()
    history = fit(model, loader, frame_lstm_loss, optimizer, valid_loader=valid, epochs=epochs, max_steps=steps,
                  scheduler=schedule, live_plot=live_plot, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        windows = torch.stack([p["window"] for p in test])
        targets = torch.stack([p["next"] for p in test])
        predicted = torch.cat([model(chunk) for chunk in windows.split(512)])
    return model, {
        "test_mse": round(float((predicted - targets).pow(2).mean()), 6),
        "test_mae": round(float((predicted - targets).abs().mean()), 6),
        "copy_last_mse": round(float((windows[:, -1] - targets).pow(2).mean()), 6),
        "parameters": parameter_count(model), "steps": steps, "train_seconds": round(seconds, 1), **_machine(),
        "history": history.epochs,
    }  # fmt: skip


@register_recipe("frame_lstm", f"bidirectional LSTM predicting the next spectrogram frame from 16, {LSTM_STEPS} steps "
                 "(lesson 08)")  # fmt: skip
def frame_lstm(path: Path, ship: bool) -> None:
    model, metrics = train_frame_lstm(live_plot=False)
    save_checkpoint(path, model, model.config, metrics)


def train_wavenet(
    model_config: WaveNetAEConfig | None = None, steps: int = WAVENET_STEPS, seed: int = WAVENET_SEED,
    size: str | int = "mini", live_plot: bool | str = "auto", progress: bool = True,
) -> tuple[WaveNetAE, dict]:  # fmt: skip
    """Train the WaveNet autoencoder; report its cross-entropy (nats per sample) on unseen test notes.

    Returns:
        ``(model, metrics)``, metrics ``{"test_nats", "test_accuracy" (share of samples whose most
        likely class is right), "uniform_nats" (log 256, a model that learned nothing),
        "receptive_field", "parameters", "train_seconds", "history", ...}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    config.seed_everything(seed)
    model = build_wavenet_ae(model_config)
    train = note_clips("train", 1.5, size)["audio"]
    valid = note_clips("valid", 1.0, size)["audio"][torch.randperm(len(NSynthMini("valid", size=size)),
                                                     generator=torch.Generator().manual_seed(seed))[:32]]  # fmt: skip
    test = note_clips("test", 1.0, size)["audio"][..., :WAVENET_CROP]
    loader = DataLoader(RandomCrops(train, WAVENET_CROP, WAVENET_BATCH * 50, seed=seed), batch_size=WAVENET_BATCH)
    optimizer = torch.optim.Adam(model.parameters(), lr=WAVENET_LR)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    start = time.perf_counter()
    history = fit(model, loader, wavenet_loss, optimizer, valid_loader=DataLoader(valid[..., :WAVENET_CROP],
                  batch_size=16), epochs=10**6, max_steps=steps, patience=4, scheduler=plateau, restore_best=True,
                  live_plot=live_plot, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        parts = [wavenet_loss(model, chunk) for chunk in test.split(16)]
    return model, {
        "test_nats": round(float(torch.stack([p["loss"] for p in parts]).mean()), 4),
        "test_accuracy": round(float(torch.stack([p["accuracy"] for p in parts]).mean()), 4),
        "uniform_nats": round(math.log(model.config.classes), 4),
        "receptive_field": model.config.receptive_field, "parameters": parameter_count(model),
        "steps": history.epochs[-1]["steps"], "train_seconds": round(seconds, 1), **_machine(),
        "history": history.epochs,
    }  # fmt: skip


def _register_wavenet(name: str, dilations: tuple[int, ...]) -> None:
    @register_recipe(name, f"WaveNet autoencoder, decoder dilations {list(dilations)}, at most {WAVENET_STEPS} "
                     "steps (lesson 08)")  # fmt: skip
    def train(path: Path, ship: bool) -> None:
        model, metrics = train_wavenet(WaveNetAEConfig(dilations=dilations), live_plot=False)
        save_checkpoint(path, model, model.config, metrics)


for _name, _dilations in WAVENET_DILATIONS.items():
    _register_wavenet(_name, _dilations)
