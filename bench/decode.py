"""Decoding benchmark (issue 9): how many seconds of 16 kHz audio the lesson-05 waveform VAE decodes per second.

Pinned to one CPU core and one torch thread, it times ``AudioVAE.decode`` (latents -> audio) and
``AudioVAE.encode`` (audio -> posterior) at batch 1 and batch 16 on ``--seconds`` of audio per
item, and one training step (forward, multi-resolution spectral distance, backward, Adam) at
batch 16. Each is repeated ``--repeats`` times after one warm-up call; the table reports the best
(minimum) time, since other work on the machine can only slow a run down, and lists every run.
The real-time factor is audio seconds produced (or read) per wall-clock second.

With ``--wavenet CHECKPOINT`` (lesson 08) it also times that WaveNet autoencoder's autoregressive
sampler (:meth:`coursekit.models.wavenet.WaveNetAE.generate`, one sample per step) at batch 1 and 16
on ``--wavenet-seconds`` of audio per item (default 0.25 s: it is about a thousand times slower).

Usage:
    python bench/decode.py [--seconds 1.0] [--repeats 5] [--checkpoint checkpoints/waveform_vae.pt]
        [--wavenet checkpoints/wavenet_d5.pt] [--wavenet-seconds 0.25]

The model is the checkpoint's, or the default ``AudioVAEConfig()`` with random weights: speed does not
depend on the weights, only on the config.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import torch

from coursekit import audio
from coursekit.checkpoints import load_checkpoint
from coursekit.models import parameter_count
from coursekit.models.audio_vae import AudioVAEConfig, build_audio_vae
from coursekit.models.wavenet import build_wavenet_ae

SR = 16000


def best_of(run: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``run`` after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="audio per batch item, seconds")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkpoint", default=None, help="time this checkpoint's model (default: AudioVAEConfig())")
    parser.add_argument("--wavenet", default=None, help="also time this WaveNet autoencoder's sampler (lesson 08)")
    parser.add_argument("--wavenet-seconds", type=float, default=0.25, help="audio per item for the WaveNet")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint, build_audio_vae)
        config = model.config
    else:
        config = AudioVAEConfig()
        model = build_audio_vae(config)
    frames = round(args.seconds * SR / config.compression)
    samples = frames * config.compression
    rows = []
    with torch.inference_mode():
        model.eval()
        for batch in (1, 16):
            z = torch.randn(batch, config.latent_channels, frames)
            x = 0.1 * torch.randn(batch, 1, samples)
            for stage, run in (("decode", lambda z=z: model.decode(z)), ("encode", lambda x=x: model.encode(x))):
                times = best_of(run, args.repeats)
                rows.append((f"{stage}, batch {batch}", batch * samples / SR, times))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = 0.1 * torch.randn(16, 1, samples)

    def step() -> None:
        x_hat, mu, logvar = model(x)
        loss = audio.multi_resolution_spectral_distance(x_hat, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    rows.append(("training step, batch 16", 16 * samples / SR, best_of(step, args.repeats)))
    if args.wavenet:
        wavenet, _ = load_checkpoint(args.wavenet, build_wavenet_ae)
        frames = max(1, round(args.wavenet_seconds * SR / wavenet.config.hop))
        for batch in (1, 16):
            code = torch.randn(batch, wavenet.config.code_channels, frames)
            times = best_of(lambda code=code: wavenet.generate(code), min(args.repeats, 2))
            rows.append((f"WaveNet sampler ({args.wavenet}), batch {batch}", batch * frames * wavenet.config.hop / SR,
                         times))  # fmt: skip
    print(f"{args.checkpoint or 'AudioVAEConfig()'} {config.to_dict()}: {parameter_count(model):,} parameters, "
          f"{args.seconds} s per item")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, pinned to core 0, "
          f"1 torch thread; torch {torch.__version__}")
    print("\n| stage | audio per call (s) | best (s) | all runs (s) | x real time |")
    print("| --- | --- | --- | --- | --- |")
    for stage, seconds, times in rows:
        runs = ", ".join(f"{t:.3f}" for t in times)
        factor = seconds / min(times)
        print(f"| {stage} | {seconds:g} | {min(times):.3f} | {runs} | {factor:,.0f}x |" if factor >= 10 else
              f"| {stage} | {seconds:g} | {min(times):.3f} | {runs} | {factor:.3f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
