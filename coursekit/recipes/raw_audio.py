"""Lesson 03's recipes: the naive waveform VAEs trained to a stated budget, and source 003's frame autoencoder.

Data (:func:`raw_audio_windows`): the 40 music recordings of :class:`~coursekit.data.MusicRecordings`
at 3,000 Hz. Every tenth piece (numbers 9, 19, 29, 39: two chorales, two folk tunes) is held out;
the model trains on one-second windows of the other 36, cut at new random starts every epoch
(:class:`WindowLoader`), and is judged on fixed windows of the held-out four.

Training (:func:`train_raw_model`): batch 16, Adam at a constant learning rate of 1e-3 (as lesson
03 first trained them), a fixed number of steps, the held-out windows evaluated after every epoch
so that the checkpoint carries both curves. Each recipe measures its model with
:func:`measure_reconstructions` and stores the numbers beside the weights.

Lesson: lessons/03_raw_audio_pitfalls.ipynb
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from coursekit import audio
from coursekit.checkpoints import save_checkpoint
from coursekit.data import MusicRecordings
from coursekit.data.windows import RandomWindows
from coursekit.losses import kl_divergence
from coursekit.metrics import CREPE_SR, active_units, crepe_cents, random_other_ratio, referee_distance
from coursekit.models.frame_autoencoder import FrameAutoencoder, FrameAutoencoderConfig
from coursekit.models.waveform import WaveformVAE, WaveformVAEConfig, waveform_vae_loss
from coursekit.recipes.registry import register_recipe
from coursekit.train import fit

SR, N_SAMPLES = 3000, 3000  # one-second windows at 3 kHz, as source 000
N_PIECES, HELD_OUT_EVERY = 40, 10  # pieces 9, 19, 29 and 39 are the test pieces
WINDOWS_PER_PIECE, TEST_WINDOWS_PER_PIECE = 50, 25
BATCH, LR, SEED = 16, 1e-3, 0  # small batches: many Adam steps for little CPU
VAE_STEPS = 4000  # a learned sigma needs about 3,000 Adam steps (about 1e-3 each in log-variance) to walk from 1
AE_STEPS = 2000  # to the music's RMS (0.24); the models with a fixed sigma do not have that walk to make
SPECTRAL_FFTS = (512, 256, 128)  # the spectral loss's windows at 3 kHz: 171, 85 and 43 ms
SHIPPED_PITCH_WINDOWS = 16  # the recipes store pitch_kept of the first 16 test windows (all of one piece), as shipped


def raw_audio_windows(n_pieces: int = N_PIECES, windows_per_piece: int = WINDOWS_PER_PIECE,
                      test_windows_per_piece: int = TEST_WINDOWS_PER_PIECE) -> dict:  # fmt: skip
    """The training windows and the held-out test windows of lesson 03.

    Returns:
        ``{"train": RandomWindows over the training pieces, "test": Tensor [n_test * test_windows_per_piece,
        1, 3000], "test_pieces": list of corpus names}``; test windows are at least -40 dB RMS.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    recordings = MusicRecordings(n_pieces=n_pieces)
    held_out = [i for i in range(len(recordings)) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    if not held_out:
        raise ValueError(f"n_pieces={n_pieces}: need at least {HELD_OUT_EVERY} pieces to hold one out.")
    train = torch.utils.data.Subset(recordings, [i for i in range(len(recordings)) if i not in held_out])
    test = torch.utils.data.Subset(recordings, held_out)
    test_windows = RandomWindows(test, N_SAMPLES, test_windows_per_piece, sr=SR, seed=1, min_rms_db=-40)
    return {
        "train": RandomWindows(train, N_SAMPLES, windows_per_piece, sr=SR, seed=SEED, min_rms_db=-40),
        "test": torch.stack([test_windows[i]["audio"] for i in range(len(test_windows))]),
        "test_pieces": [recordings.recordings[i]["piece"] for i in held_out],
    }


class WindowLoader:
    """Batches of :class:`RandomWindows`, with every window moved to a new random start before each epoch.

    :func:`coursekit.train.fit` iterates its loader once per epoch; this calls ``set_epoch`` first,
    so that no two epochs see the same cuts. Epochs count from 0; the order is fixed by ``seed``.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """

    def __init__(self, windows: RandomWindows, batch_size: int = BATCH, seed: int = SEED) -> None:
        if not hasattr(windows, "set_epoch"):
            raise TypeError(f"WindowLoader needs RandomWindows (with set_epoch), got {type(windows).__name__}.")
        self.windows, self.epoch = windows, 0
        self.loader = DataLoader(windows, batch_size=batch_size, shuffle=True,
                                 generator=torch.Generator().manual_seed(seed))  # fmt: skip

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.windows.set_epoch(self.epoch)
        self.epoch += 1
        return iter(self.loader)


def mse_loss(model: FrameAutoencoder, batch: dict) -> dict[str, torch.Tensor]:
    """Squared error of the reconstruction, sample by sample: ``{"loss": mse, "mse": mse}``.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    mse = (model(batch["audio"]) - batch["audio"]).pow(2).mean()
    return {"loss": mse, "mse": mse}


def spectral_loss(model: FrameAutoencoder, batch: dict, convergence: bool = False,
                  pad_mode: str = "constant") -> dict[str, torch.Tensor]:  # fmt: skip
    """The multi-resolution log-magnitude distance of lesson 01 (windows :data:`SPECTRAL_FFTS`), and the mse beside it.

    ``convergence`` adds lesson 05's spectral convergence (linear magnitudes, which weigh the loud partials);
    ``pad_mode="reflect"`` lets the edge frames see the clip mirrored instead of zeros (:func:`coursekit.audio.stft`).

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    x = batch["audio"]
    x_hat = model(x)
    loss = audio.multi_resolution_spectral_distance(x_hat, x, SPECTRAL_FFTS, pad_mode=pad_mode)
    if convergence:
        loss = loss + audio.multi_resolution_spectral_convergence(x_hat, x, SPECTRAL_FFTS, pad_mode=pad_mode)
    return {"loss": loss, "mse": (x_hat - x).pow(2).mean()}


def spectral_convergence_loss(model: FrameAutoencoder, batch: dict) -> dict[str, torch.Tensor]:
    """:func:`spectral_loss` plus lesson 05's spectral convergence (linear magnitudes, which weigh the loud partials).

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    return spectral_loss(model, batch, convergence=True)


LOSSES = {  # name -> loss function of (model, batch); the reflect-padded pair tests where the clicks come from
    "mse": mse_loss,
    "spectral": spectral_loss,
    "spectral+convergence": spectral_convergence_loss,
    "spectral, reflect-padded": functools.partial(spectral_loss, pad_mode="reflect"),
    "spectral+convergence, reflect-padded": functools.partial(spectral_loss, convergence=True, pad_mode="reflect"),
}


@torch.no_grad()
def reconstruct(model: WaveformVAE | FrameAutoencoder, clips: torch.Tensor) -> torch.Tensor:
    """The model's reconstruction of ``clips`` [n, 1, 3000] (a VAE decodes its posterior mean), in eval mode.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    model.eval()
    if isinstance(model, WaveformVAE):
        return model.decode(model.encode(clips)[0])
    return model(clips)


def pitch_frames_kept(originals: torch.Tensor, others: torch.Tensor, sr: int = SR, tolerance: float = 50.0,
                      threshold: float = 0.5) -> dict[str, float | int]:  # fmt: skip
    """How many of the originals' pitched 20 ms frames keep their pitch in ``others``, by CREPE (tiny).

    A frame of an original counts when CREPE's confidence exceeds ``threshold``; it is kept when the
    same frame of the other clip is also confident and its pitch lies within ``tolerance`` cents.
    On polyphonic music CREPE follows the most salient voice.

    Args:
        originals, others: Tensor [n, 1, samples] at ``sr``, matched by index.

    Returns:
        ``{"voiced": frames that count, "kept": of those, kept, "fraction": kept / voiced}``.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    if originals.shape != others.shape or originals.dim() != 3:
        shapes = f"originals {list(originals.shape)} and others {list(others.shape)}"
        raise ValueError(f"{shapes} must have one shape [n, 1, samples], matched by index.")
    voiced = kept = 0
    for original, other in zip(originals, others, strict=True):
        cents, confidence = crepe_cents(audio.resample(original, sr, CREPE_SR))
        other_cents, other_confidence = crepe_cents(audio.resample(other, sr, CREPE_SR))
        counts = confidence > threshold
        same = (other_confidence > threshold) & ((other_cents - cents).abs() <= tolerance)
        voiced, kept = voiced + int(counts.sum()), kept + int((counts & same).sum())
    return {"voiced": voiced, "kept": kept, "fraction": kept / voiced if voiced else float("nan")}


def measure_reconstructions(reconstructions: torch.Tensor, clips: torch.Tensor,
                            pitch_windows: int | None = None) -> dict:  # fmt: skip
    """The numbers lesson 03 judges a reconstruction by, on clips [n, 1, 3000] and their reconstructions.

    ``mse_over_silence`` (1 is no better than predicting zeros), ``error_percent`` (source 003's
    measure: ``100 * sqrt(mse)``, the RMS error as a percentage of full scale), ``referee_ratio``
    (:func:`coursekit.metrics.random_other_ratio`: 0 a perfect copy, 1 as far as a random other clip
    of the set), ``mean`` (the reconstructions' average sample: a DC offset) and ``rms_db``: all on
    every one of the n clips. ``pitch_kept`` (:func:`pitch_frames_kept`) and ``pitch_windows`` (how
    many clips it rests on): on the first ``pitch_windows`` clips.

    Args:
        pitch_windows: None (the default) judges pitch on all n clips; k judges the first k; 0 skips
            ``pitch_kept``. CREPE is the slow step (two calls per clip, about 0.1 s each on two cores).
            Lesson 03's test windows are stored piece by piece (25 from each held-out piece), so
            the first 16 all come from one piece: the shipped lesson 03 checkpoints stored
            ``pitch_kept`` of those 16 only (their recipes pass 16).

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    if pitch_windows is not None and not 0 <= pitch_windows <= len(clips):
        raise ValueError(f"pitch_windows={pitch_windows!r}: need None (all {len(clips)} clips) or 0 to {len(clips)}.")
    mse = float((reconstructions - clips).pow(2).mean())
    result = {
        "mse_over_silence": mse / float(clips.pow(2).mean()),
        "error_percent": 100 * math.sqrt(mse),
        "referee_ratio": random_other_ratio(reconstructions, clips, referee_distance()),
        "mean": float(reconstructions.mean()),
        "rms_db": float(audio.rms_db(reconstructions.flatten())),
    }
    n = len(clips) if pitch_windows is None else pitch_windows
    if n:
        result["pitch_kept"] = pitch_frames_kept(clips[:n], reconstructions[:n])["fraction"]
        result["pitch_windows"] = n
    return {key: round(value, 5) for key, value in result.items()}


def train_raw_model(model: WaveformVAE | FrameAutoencoder, loss_fn: Callable, steps: int, data: dict | None = None,
                    lr: float = LR, seed: int = SEED) -> list[dict]:  # fmt: skip
    """Train ``model`` for ``steps`` Adam steps on the training windows; return the per-epoch history.

    Each epoch dict holds ``train_*`` and ``valid_*`` (the held-out windows) means of every loss part.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    data = raw_audio_windows() if data is None else data
    torch.manual_seed(seed)
    loader = WindowLoader(data["train"], BATCH, seed)
    valid = [{"audio": chunk} for chunk in data["test"].split(BATCH)]
    history = fit(model, loader, loss_fn, torch.optim.Adam(model.parameters(), lr=lr), valid_loader=valid,
                  epochs=math.ceil(steps / len(loader)), max_steps=steps, progress=False, live_plot=False)  # fmt: skip
    model.eval()
    return [{k: round(v, 6) if isinstance(v, float) else v for k, v in epoch.items() if k != "time_s"}
            for epoch in history.epochs]


@torch.no_grad()
def measure_vae(model: WaveformVAE, clips: torch.Tensor, beta: float, pitch_windows: int | None = None) -> dict:
    """:func:`measure_reconstructions` plus what a VAE adds: KL (nats per window), active units, sigma, prior samples.

    Everything is measured on all the clips [n, 1, 3000] except ``pitch_kept``, which rests on the
    first ``pitch_windows`` of them (None, the default: all n; 0: not measured), as in
    :func:`measure_reconstructions`. ``sample_rms_db`` and ``sample_flatness`` describe 16 prior
    samples (generator seed 1). ``active_units`` and ``kl`` mean something only when the model was
    trained with the KL (``beta > 0``): without it nothing ties the posterior's scale to the prior's.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    model.eval()
    mu, logvar = model.encode(clips)
    samples = model.sample(16, generator=torch.Generator().manual_seed(1))
    flatness = librosa_flatness(samples)
    return measure_reconstructions(reconstruct(model, clips), clips, pitch_windows) | {
        "beta": beta,
        "kl": round(float(kl_divergence(mu, logvar)), 4),
        "active_units": active_units(mu)[0],
        "sigma": round(float(torch.exp(0.5 * model.output_log_variance()).mean()), 5),
        "sample_rms_db": round(float(audio.rms_db(samples.flatten())), 3),
        "sample_flatness": round(flatness, 5),
    }


class KLWarmup:
    """:func:`waveform_vae_loss` with beta rising linearly from 0 to ``beta`` over the first ``warmup_steps`` steps.

    Calls made in training mode count the Adam steps (step ``k`` uses ``beta * min(1, k / warmup_steps)``);
    held-out batches (eval mode) are scored with the current beta. The parts it returns are
    :func:`waveform_vae_loss`'s plus ``"beta"``, so that the curve of beta lands in the history.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """

    def __init__(self, warmup_steps: int, beta: float = 1.0) -> None:
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps={warmup_steps!r} must be >= 1 (0 steps is no warm-up: use beta directly).")
        self.warmup_steps, self.beta, self.step = warmup_steps, beta, 0

    def current_beta(self) -> float:
        """The beta of the next training step."""
        return self.beta * min(1.0, self.step / self.warmup_steps)

    def __call__(self, model: WaveformVAE, batch: dict) -> dict[str, torch.Tensor]:
        beta = self.current_beta()
        if model.training:
            self.step += 1
        return waveform_vae_loss(model, batch, beta=beta) | {"beta": torch.tensor(beta)}


def librosa_flatness(clips: torch.Tensor) -> float:
    """Mean spectral flatness (librosa, n_fft 256) of clips [n, 1, samples]: near 0 for tones, 1 for white noise.

    Lesson: lessons/03_raw_audio_pitfalls.ipynb
    """
    import librosa

    return float(np.mean(librosa.feature.spectral_flatness(y=clips.flatten().numpy(), n_fft=256)))


COLLAPSE_SIGMA = 0.24  # where raw_conv_vae's learned sigma ended after 4,000 steps (0.243): the music's RMS
WARMUP_STEPS = 2000  # KL warm-up: beta rises from 0 to 1 over the first half of the 4,000 steps
VAES = {  # name -> (model config, beta, steps): the naive VAEs of lesson 03, sections 3 and 4
    "raw_conv_vae": (WaveformVAEConfig(kind="conv", variance="isotropic"), 1.0, VAE_STEPS),
    "raw_conv_vae_diagonal": (WaveformVAEConfig(kind="conv", variance="diagonal"), 1.0, VAE_STEPS),
    "raw_conv_beta0": (WaveformVAEConfig(kind="conv", variance="fixed", output_sigma=0.05), 0.0, AE_STEPS),
    "raw_linear_vae": (WaveformVAEConfig(kind="linear", variance="isotropic"), 1.0, VAE_STEPS),
    "raw_linear_beta0": (WaveformVAEConfig(kind="linear", variance="fixed", output_sigma=0.05), 0.0, AE_STEPS),
}
CONTROLS = {  # name -> (model config, beta, steps, KL warm-up steps[, seed]): raw_conv_vae with one thing changed
    "raw_conv_vae_fixed05": (WaveformVAEConfig(kind="conv", variance="fixed", output_sigma=0.05), 1.0, VAE_STEPS, 0),
    "raw_conv_vae_fixed24": (WaveformVAEConfig(kind="conv", variance="fixed", output_sigma=COLLAPSE_SIGMA), 1.0,
                             VAE_STEPS, 0),  # fmt: skip
    "raw_conv_vae_warmup": (WaveformVAEConfig(kind="conv", variance="isotropic"), 1.0, VAE_STEPS, WARMUP_STEPS),
    "raw_conv_beta0_learned": (WaveformVAEConfig(kind="conv", variance="isotropic"), 0.0, VAE_STEPS, 0),
    "raw_conv_vae_start24": (WaveformVAEConfig(kind="conv", variance="isotropic", output_sigma=COLLAPSE_SIGMA), 1.0,
                             VAE_STEPS, 0),  # fmt: skip  # learned, but starting where raw_conv_vae's sigma ended
    "raw_conv_vae_seed1": (WaveformVAEConfig(kind="conv", variance="isotropic"), 1.0, VAE_STEPS, 0, 1),  # chance
}
FRAME_AES = {  # name -> (code channels, loss): source 003's frame autoencoder at 37.5x and 187.5x; a loss swap
    "raw_frame_ae37": (10, "mse"),
    "raw_frame_ae187": (2, "mse"),
    "raw_frame_ae37_spectral": (10, "spectral"),  # the same two sizes, trained on lesson 01's spectral distance
    "raw_frame_ae187_spectral": (2, "spectral"),
    "raw_frame_ae37_convergence": (10, "spectral+convergence"),  # ... and on lesson 05's loss, which adds
    "raw_frame_ae187_convergence": (2, "spectral+convergence"),  # linear magnitudes
    "raw_frame_ae187_spectral_reflect": (2, "spectral, reflect-padded"),  # the 16-number pair again, the loss's
    "raw_frame_ae187_convergence_reflect": (2, "spectral+convergence, reflect-padded"),  # STFTs reflect-padded
}


def _register_vae(name: str, model_config: WaveformVAEConfig, beta: float, steps: int, warmup: int = 0,
                  seed: int = SEED) -> None:  # fmt: skip
    """Register a VAE recipe; ``seed`` other than :data:`SEED` also seeds the initial weights (seed 0 leaves
    torch's default generator as the first recipes found it, so that their checkpoints stay reproducible)."""
    fixed = model_config.variance == "fixed"
    sigma = f" {model_config.output_sigma:g}" if fixed and beta else ""
    sigma += f" from {model_config.output_sigma:g}" if not fixed and model_config.output_sigma != 1.0 else ""
    schedule = f", KL warm-up 0 to {beta:g} over {warmup} steps" if warmup else ""
    schedule += f", seed {seed}" if seed != SEED else ""

    @register_recipe(name, f"lesson 03: naive {model_config.kind} waveform VAE, {model_config.variance} sigma{sigma}, "
                     f"beta {beta:g}{schedule}, {steps} steps on 3 kHz music windows")  # fmt: skip
    def train(path: Path, ship: bool) -> None:
        data = raw_audio_windows()
        if seed != SEED:
            torch.manual_seed(seed)
        model = WaveformVAE(model_config)
        loss_fn = KLWarmup(warmup, beta) if warmup else functools.partial(waveform_vae_loss, beta=beta)
        history = train_raw_model(model, loss_fn, steps, data, seed=seed)
        metrics = measure_vae(model, data["test"], beta, pitch_windows=SHIPPED_PITCH_WINDOWS)
        recorded = {"history": history, "steps": steps, "warmup_steps": warmup, "seed": seed}
        save_checkpoint(path, model, model_config, recorded | metrics)


def _register_frame_ae(name: str, code_channels: int, loss: str) -> None:
    model_config = FrameAutoencoderConfig(code_channels=code_channels)

    @register_recipe(name, f"lesson 03: source 003's frame autoencoder, {model_config.compression:g}x, {loss} loss, "
                     f"{AE_STEPS} steps on 3 kHz music windows")  # fmt: skip
    def train(path: Path, ship: bool) -> None:
        data = raw_audio_windows()
        model = FrameAutoencoder(model_config)
        history = train_raw_model(model, LOSSES[loss], AE_STEPS, data)
        metrics = measure_reconstructions(reconstruct(model, data["test"]), data["test"], SHIPPED_PITCH_WINDOWS)
        save_checkpoint(path, model, model_config, {"history": history, "steps": AE_STEPS, "loss": loss} | metrics)


for _name, _setting in VAES.items():
    _register_vae(_name, *_setting)
for _name, _setting in CONTROLS.items():
    _register_vae(_name, *_setting)
for _name, _setting in FRAME_AES.items():
    _register_frame_ae(_name, *_setting)
