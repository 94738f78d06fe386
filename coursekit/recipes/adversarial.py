"""Lesson 09's first recipes: lesson 05's decoder fine-tuned against a discriminator (RAVE's second phase).

The shipped ``waveform_vae`` is loaded, its encoder frozen, and only its decoder trains, on the
same training clips as lesson 05 (:func:`coursekit.recipes.waveform_vae.waveform_clips`), in
windows of ``FT_CROP`` samples, batches of ``FT_BATCH``, for ``FT_STEPS`` steps. Each step:

1. the frozen encoder gives the posterior of a batch of real windows, one sample is decoded;
2. the discriminator takes one Adam step on :func:`~coursekit.models.discriminators.discriminator_loss`
   of the real windows against the decoded ones;
3. the decoder takes one Adam step on lesson 05's reconstruction loss (spectral distance plus
   spectral convergence) + ``ADV_WEIGHT`` * the adversarial loss + ``FM_WEIGHT`` * feature matching.

The control run (``decoder_ft_spectral``) does step 3 with the reconstruction loss alone and no
discriminator: the same extra training, so whatever the adversarial runs change beyond it is the
discriminator's doing. Every ``FT_MARK`` steps the referee ratio of lesson 05 is measured on the
unseen test notes and loops.

Lesson: lessons/09_bonus.ipynb
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from coursekit import config
from coursekit.checkpoints import save_checkpoint
from coursekit.data.crops import RandomCrops
from coursekit.models import parameter_count
from coursekit.models.audio_vae import AudioVAE, reconstruction_loss
from coursekit.models.discriminators import (
    DiscriminatorConfig,
    build_discriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
)
from coursekit.recipes.latent_vae import load_waveform_vae
from coursekit.recipes.registry import register_recipe
from coursekit.recipes.waveform_vae import measure, waveform_clips

FT_STEPS, FT_MARK, FT_BATCH, FT_CROP, FT_SEED = 300, 100, 8, 8192, 0
FT_LR, FT_BETAS = 1e-4, (0.5, 0.9)  # both networks (HiFi-GAN's betas are (0.8, 0.99); GANs often use beta1 = 0.5)
ADV_WEIGHT, FM_WEIGHT = 1.0, 2.0  # HiFi-GAN's ratio of feature matching to adversarial loss
FINE_TUNINGS = {  # checkpoint name -> (discriminator kind, objective); None: the control without a discriminator
    "decoder_ft_spectral": None,
    "decoder_ft_msd_hinge": ("msd", "hinge"),
    "decoder_ft_mpd_hinge": ("mpd", "hinge"),
    "decoder_ft_both_hinge": ("both", "hinge"),
    "decoder_ft_both_ns": ("both", "nonsaturating"),
}


def fine_tune_decoder(
    first: AudioVAE, kind: str | None = None, objective: str = "hinge", steps: int = FT_STEPS, mark: int = FT_MARK,
    clips: dict[str, torch.Tensor] | None = None, seed: int = FT_SEED, progress: bool = True,
) -> tuple[AudioVAE, dict]:  # fmt: skip
    """Fine-tune ``first``'s decoder (in place) for ``steps`` steps, against a ``kind`` discriminator or none.

    Args:
        first: a trained :class:`AudioVAE`; its encoder is frozen.
        kind: ``"msd"``, ``"mpd"``, ``"both"`` (:class:`~coursekit.models.discriminators.DiscriminatorConfig`)
            or None for the control (reconstruction loss only).
        objective: ``"hinge"`` or ``"nonsaturating"``.
        steps, mark: training steps, and how often the referee ratios are measured (also before step 1).
        clips: :func:`~coursekit.recipes.waveform_vae.waveform_clips` (computed when None).

    Returns:
        ``(model, metrics)``, metrics ``{"marks": [{"step", "ratio_notes", "ratio_loops", "recon",
        "discriminator", "adversarial", "feature_matching", "time_s"}, ...], "kind", "objective",
        "train_seconds", "decoder_parameters", "discriminator_parameters", ...}``; the loss entries are
        means over the steps since the previous mark.

    Raises:
        FloatingPointError: a loss stopped being finite (naming the step).

    Lesson: lessons/09_bonus.ipynb
    """
    clips = waveform_clips() if clips is None else clips
    config.seed_everything(seed)
    model = first
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.decoder.parameters():
        p.requires_grad_(True)
    disc = None if kind is None else build_discriminator(DiscriminatorConfig(kind=kind))
    opt_g = torch.optim.Adam(model.decoder.parameters(), lr=FT_LR, betas=FT_BETAS)
    opt_d = None if disc is None else torch.optim.Adam(disc.parameters(), lr=FT_LR, betas=FT_BETAS)
    crops = RandomCrops(clips["train"], FT_CROP, FT_BATCH * steps, seed=seed)
    noise = torch.Generator().manual_seed(seed + 1)
    marks, log, start = [], {}, time.perf_counter()

    def record(step: int) -> None:
        means = {key: round(sum(v) / len(v), 5) for key, v in log.items()}
        marks.append({"step": step, **{k: round(v, 4) for k, v in measure(model, clips).items()}, **means,
                      "time_s": round(time.perf_counter() - start, 1)})  # fmt: skip
        log.clear()
        if progress:
            print(marks[-1], flush=True)

    record(0)
    for step, batch in enumerate(DataLoader(crops, batch_size=FT_BATCH), start=1):
        x = batch["audio"]
        model.decoder.train()
        with torch.no_grad():
            mu, logvar = model.encode(x)
            z = model.reparameterize(mu, logvar, noise)
        x_hat = model.decode(z)
        parts = {"recon": reconstruction_loss(x_hat, x)}
        if disc is not None:
            real_scores, real_features = disc(x)
            fake_scores, _ = disc(x_hat.detach())
            parts["discriminator"] = discriminator_loss(real_scores, fake_scores, objective)
            opt_d.zero_grad()
            parts["discriminator"].backward()
            opt_d.step()
            fake_scores, fake_features = disc(x_hat)
            parts["adversarial"] = generator_loss(fake_scores, objective)
            parts["feature_matching"] = feature_matching_loss(real_features, fake_features)
        loss = parts["recon"] + ADV_WEIGHT * parts.get("adversarial", 0) + FM_WEIGHT * parts.get("feature_matching", 0)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        values = {key: float(value.detach()) for key, value in parts.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise FloatingPointError(f"a fine-tuning loss stopped being finite at step {step}: {values}; lower FT_LR.")
        for key, value in values.items():
            log.setdefault(key, []).append(value)
        if step % mark == 0 or step == steps:
            model.eval()
            record(step)
    model.eval()
    return model, {
        "kind": kind, "objective": objective if kind else None, "steps": steps, "batch": FT_BATCH, "crop": FT_CROP,
        "lr": FT_LR, "adv_weight": ADV_WEIGHT, "fm_weight": FM_WEIGHT, "marks": marks,
        "train_seconds": round(time.perf_counter() - start, 1), "torch_threads": torch.get_num_threads(),
        "decoder_parameters": parameter_count(model.decoder),
        "discriminator_parameters": 0 if disc is None else parameter_count(disc),
    }  # fmt: skip


def _register(name: str, setting: tuple[str, str] | None) -> None:
    what = "reconstruction loss only (the control)" if setting is None else f"{setting[0]} discriminator, {setting[1]}"
    description = f"lesson 09: waveform_vae's decoder fine-tuned {FT_STEPS} steps, {what}"

    @register_recipe(name, description)
    def train(path: Path, ship: bool) -> None:
        kind, objective = (None, "hinge") if setting is None else setting
        model, metrics = fine_tune_decoder(load_waveform_vae(ship), kind, objective)
        save_checkpoint(path, model, model.config, metrics)


for _name, _setting in FINE_TUNINGS.items():
    _register(_name, _setting)
