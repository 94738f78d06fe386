"""Quality against CPU minutes for the lesson-05 waveform VAE (issue 9): train on NSynth-mini notes, score
reconstructions of unseen-instrument test notes with the issue's referee.

The referee is ``auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=[1024, 512, 256, 128], hop_sizes=[256,
128, 64, 32], win_lengths=[1024, 512, 256, 128])``; the figure is its mean distance between each test
clip and its reconstruction (from the posterior mean) divided by its mean distance between each test
clip and another test clip (a random pairing, fixed by the seed). Silence scores about 1.6, the
seed document's fully connected VAE 1.2-1.3, the issue's goal is 0.45 or less within 15 minutes.

Clips are the first second of each note, peak-normalised (training crops one second at a random
offset within the first 1.5 s). Training: Adam, batch 16, the multi-resolution spectral distance of
coursekit plus ``--beta`` times the KL per latent frame. One torch thread. Evaluations at the minutes
given by ``--at`` print one line each.

Usage:
    python bench/train_waveform_vae.py [--minutes 15] [--at 1 5 10 15] [--strides 8 4 4] [--channels 16 64 128]
        [--dilations 1 3] [--beta 0.001] [--test-notes 64] [--size mini]
"""

from __future__ import annotations

import argparse
import time

import auraloss
import torch

from coursekit import audio
from coursekit.data.nsynth import NSynthMini
from coursekit.losses import kl_normal
from coursekit.models import parameter_count
from coursekit.models.audio_vae import AudioVAEConfig, build_audio_vae

SR = 16000


def first_seconds(split: str, size: str, seconds: float, limit: int | None = None) -> torch.Tensor:
    """The first ``seconds`` of each note of a split, peak-normalised: Tensor [notes, 1, samples]."""
    notes = NSynthMini(split, size=size)
    n = len(notes) if limit is None else min(limit, len(notes))
    clips = torch.stack([notes[i]["audio"][..., : round(seconds * SR)] for i in range(n)])
    return audio.peak_normalize(clips)


def referee_ratio(model, clips: torch.Tensor, referee, seed: int = 0) -> float:
    """Mean referee distance to the reconstruction over mean distance to another clip (see the module docstring)."""
    model.eval()
    with torch.no_grad():
        recon = torch.cat([model.decode(model.encode(chunk)[0]) for chunk in clips.split(16)])
        to_recon = torch.stack([referee(recon[i : i + 1], clips[i : i + 1]) for i in range(len(clips))]).mean()
        others = torch.randperm(len(clips), generator=torch.Generator().manual_seed(seed))
        others = torch.where(others == torch.arange(len(clips)), (others + 1) % len(clips), others)
        to_other = torch.stack([referee(clips[j : j + 1], clips[i : i + 1]) for i, j in enumerate(others)]).mean()
    model.train()
    return float(to_recon / to_other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--at", type=float, nargs="+", default=[1, 5, 10, 15])
    parser.add_argument("--strides", type=int, nargs="+", default=[8, 4, 4])
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--dilations", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--beta", type=float, default=0.001)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--test-notes", type=int, default=64)
    parser.add_argument("--size", default="mini")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = AudioVAEConfig(tuple(args.strides), tuple(args.channels), args.latent, tuple(args.dilations))
    model = build_audio_vae(config)
    train = first_seconds("train", args.size, 1.5)
    test = first_seconds("test", args.size, 1.0, args.test_notes)
    sizes = [1024, 512, 256, 128]
    referee = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes],
                                                    win_lengths=sizes)  # fmt: skip
    print(f"{config.to_dict()}: {parameter_count(model):,} parameters; {len(train)} train notes, "
          f"{len(test)} unseen-instrument test notes; beta {args.beta}, lr {args.lr}")
    print(f"untrained: ratio {referee_ratio(model, test, referee):.3f}")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(1)
    crop = SR // config.compression * config.compression
    pending, steps, trained_s = sorted(args.at), 0, 0.0
    while pending and trained_s < args.minutes * 60:
        start = time.perf_counter()
        index = torch.randint(len(train), (16,), generator=generator)
        offsets = torch.randint(train.shape[-1] - crop + 1, (16,), generator=generator)
        x = torch.stack([train[i, :, o : o + crop] for i, o in zip(index.tolist(), offsets.tolist(), strict=True)])
        x_hat, mu, logvar = model(x, generator=generator)
        recon = audio.multi_resolution_spectral_distance(x_hat, x)
        loss = recon + args.beta * kl_normal(mu, logvar).sum(dim=1).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss {float(loss)} at step {steps}: lower --lr")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        trained_s += time.perf_counter() - start
        if trained_s >= pending[0] * 60:
            pending.pop(0)
            ratio = referee_ratio(model, test, referee)
            print(f"{trained_s / 60:5.1f} min, {steps} steps ({trained_s / steps:.2f} s/step): "
                  f"train distance {float(recon.detach()):.3f}, test ratio {ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
