"""Lesson 06's recipes: the latent VAE on the trajectories that lesson 05's waveform VAE gives for techno loops.

Data (:func:`loop_trajectories`): techno loops of two bars, repeated seamlessly to 512 latent
frames (65,536 samples, 4.1 s), encoded by the shipped ``waveform_vae`` into its posterior
``(mu, logvar)``, each ``[loops, 16, 512]``. Training loops come from seed 0, test loops from seed
1 (never heard by either model).

Training (:func:`train_latent_vae`): Adam, batches of 32, ``LATENT_STEPS`` steps with a cosine
learning rate, the KL weight of the second model warmed up over the first third. Recipes ship one
model per output length (``latent_vae_p<points>``) with the ``"posterior"`` objective, and one
with the ``"fixed"`` objective at one point.

Lesson: lessons/06_latent_vae.ipynb
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from coursekit import config
from coursekit.checkpoints import save_checkpoint
from coursekit.data.loops import TechnoLoops
from coursekit.losses import beta_warmup
from coursekit.metrics import active_units, roughness
from coursekit.models import parameter_count
from coursekit.models.audio_vae import AudioVAE, build_audio_vae
from coursekit.models.latent_vae import LatentVAE, LatentVAEConfig, build_latent_vae, latent_vae_loss
from coursekit.recipes.registry import checkpoint_in_use, load_or_train, register_recipe
from coursekit.train import fit

FRAMES = 512  # latent frames per loop: 65,536 samples
TRAIN_LOOPS, TEST_LOOPS = 1000, 64
LATENT_SEED, LATENT_BATCH, LATENT_LR, LATENT_EPOCHS, LATENT_BETA = 0, 32, 2e-3, 30, 1.0
POINTS = (64, 16, 4, 1)  # the output lengths shipped for the compression sweep


@torch.no_grad()
def loop_trajectories(
    model: AudioVAE, n_loops: int, seed: int, frames: int = FRAMES, batch_size: int = 8
) -> dict[str, torch.Tensor]:
    """Encode ``n_loops`` techno loops (two bars, seed ``seed``) into the first model's posterior.

    Returns:
        ``{"mu": Tensor [n_loops, channels, frames], "logvar": the same shape, "bpm": Tensor [n_loops]}``.

    Lesson: lessons/06_latent_vae.ipynb
    """
    model.eval()
    loops = TechnoLoops(n_loops=n_loops, bars=2, seed=seed, length=frames * model.config.compression)
    mus, logvars = [], []
    for start in range(0, n_loops, batch_size):
        x = torch.stack([loops[i]["audio"] for i in range(start, min(n_loops, start + batch_size))])
        mu, logvar = model.encode(x)
        mus.append(mu)
        logvars.append(logvar)
    return {"mu": torch.cat(mus), "logvar": torch.cat(logvars),
            "bpm": torch.tensor([loops.records[i]["bpm"] for i in range(n_loops)])}  # fmt: skip


def load_waveform_vae(ship: bool = False) -> AudioVAE:
    """Lesson 05's model: the student's own run unless ``ship``, else the shipped checkpoint.

    Lesson: lessons/06_latent_vae.ipynb
    """
    if ship:
        from coursekit.checkpoints import load_checkpoint

        model, _ = load_checkpoint(checkpoint_in_use("waveform_vae", ship=True), build_audio_vae)
    else:
        model, _ = load_or_train("waveform_vae", build_audio_vae, verbose=False)
    return model.eval()


@torch.no_grad()
def describe_latent_vae(model: LatentVAE, data: dict[str, torch.Tensor], objective: str, seed: int = 0) -> dict:
    """Measure a latent VAE on trajectories ``data`` (from :func:`loop_trajectories`).

    Returns ``{"recon", "kl"}`` (the negative ELBO's parts under ``objective``, nats per loop, one
    posterior sample drawn with ``seed``), ``"mse"`` (the predicted mean of the posterior mean's
    reconstruction against the first model's mean, per value), ``"explained"`` (the share of the
    variance across loops that the reconstruction explains: 1 - squared error / squared deviation
    from the average trajectory of ``data``; 0 for a model that always answers the average loop),
    ``"active_units"`` (of the second model's latent numbers, over loops) and the roughness of the
    reconstructions, of as many prior samples and of the data.

    Lesson: lessons/06_latent_vae.ipynb
    """
    model.eval()
    batch = {"mu": data["mu"], "logvar": data["logvar"]}
    parts = latent_vae_loss(model, batch, objective, generator=torch.Generator().manual_seed(seed))
    z, _ = model.encode(data["mu"])
    mean, _ = model.decode(z)
    samples = model.sample(len(data["mu"]), torch.Generator().manual_seed(seed))
    deviation = (data["mu"] - data["mu"].mean(dim=0, keepdim=True)).pow(2).sum()
    return {
        "recon": float(parts["recon"]),
        "kl": float(parts["kl"]),
        "mse": float((mean - data["mu"]).pow(2).mean()),
        "explained": float(1 - (mean - data["mu"]).pow(2).sum() / deviation),
        "active_units": active_units(z.flatten(1))[0],
        "roughness_reconstruction": roughness(mean),
        "roughness_samples": roughness(samples),
        "roughness_data": roughness(data["mu"]),
    }


def train_latent_vae(
    data: dict[str, torch.Tensor],
    model_config: LatentVAEConfig | None = None,
    objective: str = "posterior",
    epochs: int = LATENT_EPOCHS,
    beta: float = LATENT_BETA,
    seed: int = LATENT_SEED,
    valid: dict[str, torch.Tensor] | None = None,
    live_plot: bool | str = "auto",
    progress: bool = True,
) -> tuple[LatentVAE, dict]:
    """Train a :class:`LatentVAE` on ``data`` (from :func:`loop_trajectories`) for ``epochs`` epochs.

    The ``"fixed"`` objective's target is one sample of the first model's posterior, drawn anew
    every batch (source 004: "a sample or the mean"; a sample is what the first model's decoder
    was trained on).

    Returns:
        ``(model, metrics)``: :func:`describe_latent_vae` on ``valid`` (when given), ``parameters``,
        ``train_time_s``, ``objective``, ``beta`` and ``history``.

    Lesson: lessons/06_latent_vae.ipynb
    """
    model_config = LatentVAEConfig() if model_config is None else model_config
    config.seed_everything(seed)
    model = build_latent_vae(model_config)
    dataset = TensorDataset(data["mu"], data["logvar"])
    loader = DataLoader(dataset, batch_size=LATENT_BATCH, shuffle=True, generator=torch.Generator().manual_seed(seed))
    steps_total, step = epochs * len(loader), [0]
    noise = torch.Generator().manual_seed(seed + 1)

    def loss(m: LatentVAE, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        mu, logvar = batch
        weight = beta_warmup(step[0], steps_total // 3, beta)
        step[0] += m.training
        target = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=noise) if m.training else mu
        return latent_vae_loss(m, {"mu": mu, "logvar": logvar, "target": target}, objective, weight)

    valid_loader = None
    if valid is not None:
        valid_loader = DataLoader(TensorDataset(valid["mu"], valid["logvar"]), batch_size=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=LATENT_LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=LATENT_LR / 20)
    start = time.perf_counter()
    history = fit(model, loader, loss, optimizer, valid_loader=valid_loader, epochs=epochs, scheduler=schedule,
                  live_plot=live_plot, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    metrics = {"parameters": parameter_count(model), "train_time_s": round(seconds, 1), "objective": objective,
               "beta": beta, "train_loops": len(dataset), "epochs": epochs, "history": history.to_dict()}  # fmt: skip
    if valid is not None:
        metrics |= {key: round(value, 6) for key, value in describe_latent_vae(model, valid, objective).items()}
    model.eval()
    return model, metrics


def _train_and_save(path: Path, ship: bool, model_config: LatentVAEConfig, objective: str) -> None:
    first = load_waveform_vae(ship)
    train = loop_trajectories(first, TRAIN_LOOPS, seed=0)
    test = loop_trajectories(first, TEST_LOOPS, seed=1)
    model, metrics = train_latent_vae(train, model_config, objective, valid=test, live_plot=False)
    save_checkpoint(path, model, model_config, metrics)


def _register(points: int, objective: str) -> None:
    suffix = "" if objective == "posterior" else "_fixed"
    name = f"latent_vae_p{points}{suffix}"

    @register_recipe(name, f"latent VAE on waveform_vae trajectories of loops, 512 frames -> {points} point(s), "
                     f"objective {objective} (lesson 06)")  # fmt: skip
    def train(path: Path, ship: bool) -> None:
        _train_and_save(path, ship, LatentVAEConfig(points=points), objective)


for _points in POINTS:
    _register(_points, "posterior")
_register(1, "fixed")
