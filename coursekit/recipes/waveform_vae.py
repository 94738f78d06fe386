"""Lesson 05's recipe: the waveform VAE on NSynth-mini notes and techno loops, judged on unheard material.

Data (:func:`waveform_clips`): training windows come from the first 1.5 s of the 1,140 NSynth-mini
train notes and from 200 two-bar techno loops (loop seed 0, their first 3 s cut in two). Test
material was never heard: every note of the test split (220 notes of 11 instruments that are not in
training, first second) and 32 loops drawn from another seed (first 2 s, cut in two: 64 one-second
clips). Validation during training: 32 valid-split notes chosen at random across its instruments.

Training (:func:`train_waveform_vae`): one-second random windows, batch 16, Adam with a learning
rate that follows a cosine over the time budget (wall-clock seconds, not epochs: "how long do I
train?" is answered in minutes), the :class:`~coursekit.models.audio_vae.AudioVAELoss`. At each of
the ``marks`` (minutes) it measures the test ratio of :func:`coursekit.metrics.random_other_ratio`
on both test sets and keeps the reconstruction of one test note and one test loop, so a lesson can
play what 1 minute, 10 minutes and the whole run sound like.

Lesson: lessons/05_waveform_vae.ipynb
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from coursekit import audio, config
from coursekit.checkpoints import save_checkpoint
from coursekit.data.crops import RandomCrops
from coursekit.data.loops import TechnoLoops
from coursekit.data.nsynth import NSynthMini
from coursekit.metrics import active_units, pitch_kept, random_other_ratio, referee_distance
from coursekit.models import parameter_count
from coursekit.models.audio_vae import AudioVAE, AudioVAEConfig, AudioVAELoss, build_audio_vae
from coursekit.recipes.registry import register_recipe
from coursekit.train import fit

SR = 16000
CROP = SR  # one-second training windows (125 latent frames at 128x)
WAVE_SEED = 0
WAVE_BATCH, WAVE_LR, WAVE_STEPS_PER_EPOCH = 16, 1e-3, 50
WAVE_MINUTES = 15.0  # the budget
WAVE_MARKS = (1.0, 5.0, 10.0, 15.0)  # minutes at which the test ratio is measured
WAVE_REGULARISER, WAVE_WEIGHT, WAVE_WARMUP, WAVE_RECONSTRUCTION = "kl", 0.001, 500, "spectral+convergence"
TRAIN_LOOPS, TEST_LOOPS, TEST_NOTES = 200, 32, None  # None: every test note (220 in NSynth-mini)
LISTEN = {"note": 0, "loop": 0}  # test clips whose reconstructions are kept at each mark


def waveform_clips(size: str | int = "mini", train_loops: int = TRAIN_LOOPS) -> dict[str, torch.Tensor]:
    """The clips of lesson 05, each peak-normalised to 0.9 (see the module docstring).

    Returns:
        ``{"train": Tensor [1140 + 2 * train_loops, 1, 24000], "valid": [32, 1, 16000] (valid-split
        notes), "test_notes": [220, 1, 16000], "test_pitches": [220] (their MIDI keys), "test_loops":
        [64, 1, 16000]}`` for size "mini".

    Lesson: lessons/05_waveform_vae.ipynb
    """

    def chosen(split: str, limit: int | None) -> list[int]:  # notes are sorted by instrument: choose across all
        n = len(NSynthMini(split, size=size))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(WAVE_SEED)).tolist()
        return sorted(order[:limit]) if limit is not None else list(range(n))

    def notes(split: str, seconds: float, limit: int | None = None) -> torch.Tensor:
        data = NSynthMini(split, size=size)
        return torch.stack([data[i]["audio"][..., : round(seconds * SR)] for i in chosen(split, limit)])

    def loops(n_loops: int, seed: int, piece: int) -> torch.Tensor:
        data = TechnoLoops(n_loops=n_loops, bars=2, seed=seed)
        return torch.cat([data[i]["audio"][..., : 2 * piece].reshape(2, 1, piece) for i in range(len(data))])

    train = torch.cat([notes("train", 1.5), loops(train_loops, 0, round(1.5 * SR))])
    clips = {"train": train, "valid": notes("valid", 1.0, 32), "test_notes": notes("test", 1.0, TEST_NOTES),
             "test_loops": loops(TEST_LOOPS, 1, SR)}  # fmt: skip
    clips = {key: audio.peak_normalize(value) * 0.9 for key, value in clips.items()}
    test = NSynthMini("test", size=size)
    return clips | {"test_pitches": torch.tensor([test.examples[i]["pitch"] for i in chosen("test", TEST_NOTES)])}


@torch.no_grad()
def reconstruct(model: AudioVAE, clips: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Decode the posterior mean of each clip: Tensor [n, 1, samples] -> the same shape, in eval mode.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    model.eval()
    return torch.cat([model.decode(model.encode(chunk)[0]) for chunk in clips.split(batch_size)])


def measure(model: AudioVAE, clips: dict[str, torch.Tensor]) -> dict[str, float]:
    """The test ratios (reconstruction over random other clip, auraloss referee) on unseen notes and loops.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    referee = referee_distance()
    return {f"ratio_{kind}": random_other_ratio(reconstruct(model, clips[f"test_{kind}"]), clips[f"test_{kind}"],
                                                referee) for kind in ("notes", "loops")}  # fmt: skip


def train_waveform_vae(
    model_config: AudioVAEConfig | None = None,
    minutes: float = WAVE_MINUTES,
    marks: tuple[float, ...] = WAVE_MARKS,
    loss: AudioVAELoss | None = None,
    clips: dict[str, torch.Tensor] | None = None,
    lr: float = WAVE_LR,
    seed: int = WAVE_SEED,
    max_steps: int | None = None,
    measure_pitch: bool = True,
    live_plot: bool | str = "auto",
    progress: bool = True,
) -> tuple[AudioVAE, dict]:
    """Train an :class:`AudioVAE` for ``minutes`` of wall-clock time and measure it at each mark.

    With ``max_steps`` training stops after that many steps even before ``minutes`` (and the learning
    rate's cosine runs over the steps instead of the time), so that runs compared with each other do
    the same work whatever else the machine is doing.

    Args:
        model_config: the model (default ``AudioVAEConfig()``).
        minutes: the training budget (validation and measurements not included).
        marks: minutes at which to measure (those beyond ``minutes`` are dropped; ``minutes`` is added).
        loss: the objective (default KL with weight ``WAVE_WEIGHT``, warm-up ``WAVE_WARMUP`` steps).
        clips: :func:`waveform_clips` (computed when None).

    Returns:
        ``(model, metrics)`` with metrics ``{"marks": [{"minutes", "steps", "ratio_notes",
        "ratio_loops", "train_recon"}, ...], "listen": {"<minutes>": {"note": [int16 ...], "loop":
        [...]}}, "active_units", "parameters", "seconds_per_step", "history", ...}``.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    model_config = AudioVAEConfig() if model_config is None else model_config
    clips = waveform_clips() if clips is None else clips
    config.seed_everything(seed)
    model = build_audio_vae(model_config)
    loss = AudioVAELoss(WAVE_REGULARISER, WAVE_WEIGHT, WAVE_WARMUP, WAVE_RECONSTRUCTION) if loss is None else loss
    crops = RandomCrops(clips["train"], CROP, WAVE_BATCH * WAVE_STEPS_PER_EPOCH, seed=seed)
    loader = DataLoader(crops, batch_size=WAVE_BATCH)
    valid = DataLoader(clips["valid"], batch_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    budget_s, trained_s, segment_start = minutes * 60, 0.0, time.perf_counter()

    def cosine(epoch: int) -> float:  # the learning rate's factor: a cosine over training time, down to 5 %
        done = min(1.0, (trained_s + time.perf_counter() - segment_start) / budget_s)
        if max_steps is not None:
            done = min(1.0, epoch * WAVE_STEPS_PER_EPOCH / max_steps)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
    chosen = {"note": clips["test_notes"][LISTEN["note"]], "loop": clips["test_loops"][LISTEN["loop"]]}
    results: dict = {"marks": [], "listen": {}}
    histories, steps = [], 0
    for mark in sorted({m for m in marks if m < minutes} | {minutes}):
        segment_start = time.perf_counter()
        if max_steps is not None and steps >= max_steps:
            break
        # the previous segment's last validation can run past this mark (on a busy machine): then one step
        left_s = max(mark * 60 - trained_s, 1e-6)
        history = fit(model, loader, loss, optimizer, valid_loader=valid, epochs=10**6,
                      max_steps=None if max_steps is None else max_steps - steps,
                      time_budget_s=left_s, scheduler=schedule, live_plot=live_plot,
                      progress=progress)  # fmt: skip
        trained_s += time.perf_counter() - segment_start
        last = history.epochs[-1]
        steps += last["steps"]
        histories += [epoch | {"time_s": epoch["time_s"] + trained_s - last["time_s"],
                               "steps": epoch["steps"] + steps - last["steps"]} for epoch in history.epochs]
        results["marks"].append({"minutes": round(trained_s / 60, 3), "steps": steps,
                                 "train_recon": round(history.epochs[-1]["train_recon"], 5)}
                                | {k: round(v, 4) for k, v in measure(model, clips).items()})  # fmt: skip
        heard = reconstruct(model, torch.stack(list(chosen.values())))
        results["listen"][f"{mark:g}"] = {kind: _int16(x) for kind, x in zip(chosen, heard, strict=True)}
        if progress:
            print(f"{trained_s / 60:.1f} min, {steps} steps: {results['marks'][-1]}")
    mu, _ = model.encode(clips["test_loops"])
    if measure_pitch:
        recon = reconstruct(model, clips["test_notes"])
        results["pitch_kept"] = pitch_kept(clips["test_notes"], recon, clips["test_pitches"].tolist(), SR)
    results |= {
        "active_units": active_units(mu.detach().transpose(1, 2).reshape(-1, mu.shape[1]))[0],
        "parameters": parameter_count(model),
        "seconds_per_step": round(trained_s / steps, 4),
        "train_minutes": round(trained_s / 60, 3),
        "loss": {"regulariser": loss.regulariser, "weight": loss.weight, "warmup_steps": loss.warmup_steps,
                 "reconstruction": loss.reconstruction},  # fmt: skip
        "lr": lr,
        "batch": WAVE_BATCH,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical cores, torch {torch.__version__}",
        "history": histories,
    }
    model.eval()
    return model, results


def _int16(x: torch.Tensor) -> list[int]:
    return (x.clamp(-1, 1) * 32767).round().to(torch.int16).flatten().tolist()


def listen_audio(metrics: dict, mark: str, kind: str) -> torch.Tensor:
    """The kept reconstruction of the test ``kind`` ("note" or "loop") at ``mark`` minutes: Tensor [1, samples].

    Lesson: lessons/05_waveform_vae.ipynb
    """
    return torch.tensor(np.asarray(metrics["listen"][mark][kind], dtype=np.float32) / 32767).view(1, -1)


@register_recipe("waveform_vae", "fully convolutional waveform VAE, strides 8-4-4 = 128x, latent 16, notes + loops, "
                 "15 min (lesson 05)")  # fmt: skip
def waveform_vae(path: Path, ship: bool) -> None:
    model, metrics = train_waveform_vae(live_plot=False)
    save_checkpoint(path, model, model.config, metrics)


VARIANT_STEPS = 300  # about 4 minutes on one thread of the course's CPU
VARIANTS = {  # name -> (model, regulariser, weight, reconstruction): the comparisons of lesson 05
    "kl0": (AudioVAEConfig(), "kl", 0.0, WAVE_RECONSTRUCTION),
    "kl": (AudioVAEConfig(), "kl", WAVE_WEIGHT, WAVE_RECONSTRUCTION),
    "kl_high": (AudioVAEConfig(), "kl", 1.0, WAVE_RECONSTRUCTION),
    "mmd": (AudioVAEConfig(), "mmd", 10.0, WAVE_RECONSTRUCTION),  # the WAE paper's weight on MNIST
    "mse": (AudioVAEConfig(), "kl", WAVE_WEIGHT, "mse"),
    "log_only": (AudioVAEConfig(), "kl", WAVE_WEIGHT, "spectral"),  # source 004's loss alone
}
BANDS16 = AudioVAEConfig(bands=16, strides=(2, 2, 2), channels=(32, 64, 128), dilations=(1, 3, 9))


def _register_variant(
    name: str, model_config: AudioVAEConfig, regulariser: str, weight: float, reconstruction: str,
    steps: int | None = None,
) -> None:
    bands = f"{model_config.bands} PQMF bands, " if model_config.bands > 1 else ""
    budget = f"{steps} steps" if steps else f"{WAVE_MINUTES:g} min"
    description = (f"lesson 05's comparison: the waveform VAE with {bands}{regulariser} weight {weight:g}, "
                   f"{reconstruction} loss, {budget}")  # fmt: skip

    @register_recipe(f"waveform_vae_{name}", description)
    def train_variant(path: Path, ship: bool) -> None:
        loss = AudioVAELoss(regulariser, weight, WAVE_WARMUP, reconstruction)
        model, metrics = train_waveform_vae(model_config, minutes=WAVE_MINUTES if steps is None else 60.0, loss=loss,
                                            max_steps=steps, measure_pitch=steps is None, live_plot=False)  # fmt: skip
        save_checkpoint(path, model, model.config, metrics)


for _name, _setting in VARIANTS.items():
    _register_variant(_name, *_setting, steps=VARIANT_STEPS)
_register_variant("bands16", BANDS16, WAVE_REGULARISER, WAVE_WEIGHT, WAVE_RECONSTRUCTION)
_register_variant("mse15", AudioVAEConfig(), WAVE_REGULARISER, WAVE_WEIGHT, "mse")  # the shipped budget, squared error

BOTH_STEPS = 1135  # the steps the shipped model took in its 15 minutes (bench run E)


@register_recipe("waveform_vae_both", "lesson 05's comparison: the waveform VAE with log + linear spectral distance "
                 f"plus relative waveform error, KL {WAVE_WEIGHT:g}, {BOTH_STEPS} steps (as shipped)")  # fmt: skip
def waveform_vae_both(path: Path, ship: bool) -> None:
    loss = AudioVAELoss(WAVE_REGULARISER, WAVE_WEIGHT, WAVE_WARMUP, "spectral+convergence+waveform")
    model, metrics = train_waveform_vae(minutes=60.0, marks=(5.0, 10.0, 15.0), loss=loss, max_steps=BOTH_STEPS,
                                        live_plot=False)  # fmt: skip
    save_checkpoint(path, model, model.config, metrics)


LOOP_COUNTS, LOOP_COUNT_STEPS = (8, 32, 128, 512), 1000  # lesson 05's "does more data help?" runs


def train_on_loops(n_loops: int, steps: int = LOOP_COUNT_STEPS) -> tuple[AudioVAE, dict]:
    """The shipped architecture and loss trained on ``n_loops`` two-bar loops only, for ``steps`` steps.

    Measures the referee ratio on the 64 held-out loop clips (``ratio_loops``), on the unseen-instrument
    notes (``ratio_notes``) and on up to 64 one-second clips of the training loops themselves
    (``ratio_train_loops``, cut like the held-out ones), so the gap between heard and unheard loops shows.

    Returns:
        ``(model, metrics)`` as :func:`train_waveform_vae`, plus ``"train_loops"`` and ``"ratio_train_loops"``.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    clips = waveform_clips(train_loops=n_loops)
    clips["train"] = clips["train"][-2 * n_loops :]  # the loop pieces only: no notes
    model, metrics = train_waveform_vae(AudioVAEConfig(), minutes=600.0, marks=(), clips=clips, max_steps=steps,
                                        measure_pitch=False, live_plot=False, progress=False)  # fmt: skip
    heard = clips["train"][:64, :, :SR]
    ratio_heard = random_other_ratio(reconstruct(model, heard), heard, referee_distance())
    metrics |= {"train_loops": n_loops, "ratio_train_loops": round(ratio_heard, 4)}
    return model, metrics


def _register_loop_count(n_loops: int) -> None:
    @register_recipe(f"waveform_vae_loops{n_loops}", f"lesson 05's data-size comparison: the waveform VAE trained on "
                     f"{n_loops} two-bar loops only, {LOOP_COUNT_STEPS} steps")  # fmt: skip
    def train_loop_count(path: Path, ship: bool) -> None:
        model, metrics = train_on_loops(n_loops)
        save_checkpoint(path, model, model.config, metrics)


for _count in LOOP_COUNTS:
    _register_loop_count(_count)
