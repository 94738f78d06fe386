"""Lesson 09's VQ recipes: lesson 05's network with a codebook in place of its Gaussian bottleneck.

Trained exactly like lesson 05's comparison runs (``waveform_vae_kl``, ``_kl0``, ``_kl_high``: the
same clips, one-second windows, batch 16, Adam at 1e-3 on a cosine, ``VQ_STEPS`` = 300 steps), so the
only difference from them is the bottleneck. Two runs: with dead-code restarts (``vq_waveform``) and
without (``vq_waveform_norestart``).

Lesson: lessons/09_bonus.ipynb
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from coursekit import config
from coursekit.checkpoints import save_checkpoint
from coursekit.data.crops import RandomCrops
from coursekit.metrics import random_other_ratio, referee_distance
from coursekit.models import parameter_count
from coursekit.models.vq import VQAudioAutoencoder, VQAudioConfig, VQLoss, build_vq_audio, perplexity
from coursekit.recipes.registry import register_recipe
from coursekit.recipes.waveform_vae import CROP, VARIANT_STEPS, WAVE_BATCH, WAVE_LR, WAVE_SEED, waveform_clips
from coursekit.train import fit

VQ_STEPS = VARIANT_STEPS  # lesson 05's comparison budget, 300 steps


@torch.no_grad()
def vq_reconstruct(
    model: VQAudioAutoencoder, clips: torch.Tensor, batch_size: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(reconstructions [n, 1, samples], codes [n, frames])`` of clips ``[n, 1, samples]``, in eval mode.

    Lesson: lessons/09_bonus.ipynb
    """
    model.eval()
    codes = torch.cat([model.encode(chunk) for chunk in clips.split(batch_size)])
    return torch.cat([model.decode_codes(chunk) for chunk in codes.split(batch_size)]), codes


def describe_vq(model: VQAudioAutoencoder, clips: dict[str, torch.Tensor]) -> dict:
    """Referee ratios, codebook perplexity and codes used on lesson 05's unseen test notes and loops.

    Lesson: lessons/09_bonus.ipynb
    """
    referee, found = referee_distance(), {}
    for kind in ("notes", "loops"):
        recon, codes = vq_reconstruct(model, clips[f"test_{kind}"])
        found |= {f"ratio_{kind}": round(random_other_ratio(recon, clips[f"test_{kind}"], referee), 4),
                  f"perplexity_{kind}": round(perplexity(codes, model.config.codes), 2),
                  f"codes_used_{kind}": int(codes.unique().numel())}  # fmt: skip
    return found


def train_vq(
    model_config: VQAudioConfig | None = None, steps: int = VQ_STEPS, clips: dict[str, torch.Tensor] | None = None,
    seed: int = WAVE_SEED, live_plot: bool | str = "auto", progress: bool = True,
) -> tuple[VQAudioAutoencoder, dict]:  # fmt: skip
    """Train a :class:`VQAudioAutoencoder` as lesson 05 trained its comparison runs, ``steps`` steps.

    Returns:
        ``(model, metrics)``: :func:`describe_vq` on the test clips, ``restarts`` (dead codes moved),
        ``parameters``, ``train_seconds``, ``bits_per_second`` and the training ``history``.

    Lesson: lessons/09_bonus.ipynb
    """
    model_config = VQAudioConfig() if model_config is None else model_config
    clips = waveform_clips() if clips is None else clips
    config.seed_everything(seed)
    model = build_vq_audio(model_config)
    loader = DataLoader(RandomCrops(clips["train"], CROP, WAVE_BATCH * 50, seed=seed), batch_size=WAVE_BATCH)
    optimizer = torch.optim.Adam(model.parameters(), lr=WAVE_LR)
    epochs = -(-steps // len(loader))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=WAVE_LR / 20)
    valid, start = DataLoader(clips["valid"], batch_size=16), time.perf_counter()
    history = fit(model, loader, VQLoss(), optimizer, valid_loader=valid, epochs=epochs, max_steps=steps,
                  scheduler=schedule, live_plot=live_plot, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    model.eval()
    return model, describe_vq(model, clips) | {
        "restarts": model.quantizer.restarts, "parameters": parameter_count(model), "steps": steps,
        "train_seconds": round(seconds, 1), "bits_per_second": model.bits_per_second,
        "torch_threads": torch.get_num_threads(), "history": history.to_dict(),
    }  # fmt: skip


def _register(name: str, restart_below: float | None) -> None:
    how = "with dead-code restarts" if restart_below else "without dead-code restarts"

    @register_recipe(name, f"lesson 09: lesson 05's network with a 512-code VQ bottleneck {how}, {VQ_STEPS} steps")
    def train(path: Path, ship: bool) -> None:
        model, metrics = train_vq(VQAudioConfig(restart_below=restart_below), live_plot=False)
        save_checkpoint(path, model, model.config, metrics)


_register("vq_waveform", 0.1)
_register("vq_waveform_norestart", None)
