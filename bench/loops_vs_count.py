"""Held-out loop quality against the number of training loops (issue 9: "show how held-out quality grows
with the number of training loops"), a step budget per run so that the runs do equal work.

Trains the shipped architecture and loss (``AudioVAEConfig()``, log + linear spectral distance, KL 0.001)
on loops only, ``--loops`` of them (seed 0, first 3 s cut in two), for ``--steps`` steps, and prints the
referee ratio on the 64 held-out loop clips (seed 1) and on the 220 unseen-instrument notes.

Usage:
    python bench/loops_vs_count.py --loops 25 [--steps 300]
"""

from __future__ import annotations

import argparse
import json

import torch

from coursekit.recipes.waveform_vae import train_on_loops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, required=True)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    _, metrics = train_on_loops(args.loops, args.steps)  # the recipes' own code (waveform_vae_loops<N>)
    print(json.dumps({"train_loops": args.loops, "steps": args.steps, "ratio_train_loops": metrics["ratio_train_loops"]}
                     | metrics["marks"][-1]))


if __name__ == "__main__":
    main()
