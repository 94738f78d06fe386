"""Lesson 09's diffusion recipe: a DDPM on the latent trajectories that lesson 06's second VAE learns.

Data: lesson 06's (:func:`coursekit.recipes.latent_vae.loop_trajectories`): 1,000 training loops
(seed 0) and 64 test loops (seed 1) encoded by the shipped ``waveform_vae``, each ``[16, 512]``; the
model learns their posterior means, standardised per channel with the training set's mean and spread
(stored in the checkpoint). Training: Adam at ``DIFF_LR`` on a cosine, batches of ``DIFF_BATCH``,
``DIFF_STEPS`` steps, the v-prediction loss of :func:`coursekit.models.diffusion.diffusion_loss`,
validated on the test loops with the noise and steps fixed by a seed.

Lesson: lessons/09_bonus.ipynb
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from coursekit import config
from coursekit.checkpoints import save_checkpoint
from coursekit.models import parameter_count
from coursekit.models.diffusion import DiffusionConfig, TrajectoryDenoiser, build_denoiser, diffusion_loss
from coursekit.recipes.latent_vae import TEST_LOOPS, TRAIN_LOOPS, load_waveform_vae, loop_trajectories
from coursekit.recipes.registry import register_recipe
from coursekit.train import fit

DIFF_SEED, DIFF_BATCH, DIFF_LR, DIFF_STEPS = 0, 16, 5e-4, 2400


def train_diffusion(
    train: torch.Tensor, valid: torch.Tensor | None = None, model_config: DiffusionConfig | None = None,
    steps: int = DIFF_STEPS, seed: int = DIFF_SEED, live_plot: bool | str = "auto", progress: bool = True,
) -> tuple[TrajectoryDenoiser, dict]:  # fmt: skip
    """Train a :class:`TrajectoryDenoiser` on trajectories ``train [n, 16, frames]`` (first-model units).

    Returns:
        ``(model, metrics)``, metrics ``{"valid_loss" (last epoch, when ``valid`` is given), "parameters",
        "train_seconds", "steps", "history"}``.

    Lesson: lessons/09_bonus.ipynb
    """
    model_config = DiffusionConfig(latent_channels=train.shape[1]) if model_config is None else model_config
    config.seed_everything(seed)
    model = build_denoiser(model_config)
    model.mean.copy_(train.mean(dim=(0, 2)))
    model.std.copy_(train.std(dim=(0, 2)).clamp_min(1e-6))
    noise = torch.Generator().manual_seed(seed + 1)

    def loss(m: TrajectoryDenoiser, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        generator = noise if m.training else torch.Generator().manual_seed(seed + 2)
        return diffusion_loss(m, m.standardise(batch[0]), generator)

    loader = DataLoader(TensorDataset(train), batch_size=DIFF_BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    valid_loader = None if valid is None else DataLoader(TensorDataset(valid), batch_size=len(valid))
    epochs = -(-steps // len(loader))
    optimizer = torch.optim.Adam(model.parameters(), lr=DIFF_LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=DIFF_LR / 20)
    start = time.perf_counter()
    history = fit(model, loader, loss, optimizer, valid_loader=valid_loader, epochs=epochs, max_steps=steps,
                  scheduler=schedule, live_plot=live_plot, progress=progress)  # fmt: skip
    model.eval()
    metrics = {"parameters": parameter_count(model), "train_seconds": round(time.perf_counter() - start, 1),
               "steps": steps, "batch": DIFF_BATCH, "lr": DIFF_LR, "train_loops": len(train),
               "torch_threads": torch.get_num_threads(), "history": history.to_dict()}  # fmt: skip
    if valid is not None:
        metrics["valid_loss"] = round(history.epochs[-1]["valid_loss"], 5)
    return model, metrics


@register_recipe("latent_diffusion", f"lesson 09: a DDPM (v-prediction, cosine schedule) on waveform_vae trajectories "
                 f"of {TRAIN_LOOPS} loops, {DIFF_STEPS} steps")  # fmt: skip
def latent_diffusion(path: Path, ship: bool) -> None:
    first = load_waveform_vae(ship)
    train = loop_trajectories(first, TRAIN_LOOPS, seed=0)["mu"]
    test = loop_trajectories(first, TEST_LOOPS, seed=1)["mu"]
    model, metrics = train_diffusion(train, test, live_plot=False)
    save_checkpoint(path, model, model.config, metrics)
