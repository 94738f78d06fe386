"""Lesson 02's recipes: the MNIST VAEs (linear, conv, conv + batch norm, a 2-D latent for the manifold,
and the same 2-D model trained without its KL term).

Each trains with the ELBO (``beta`` = 1, or 0 for the control without KL) on 3,600 training digits,
keeps the epoch with the best loss on 400 held-out validation digits, and records its
measurements (the full ELBO, whatever it trained with) on those and on the test digits.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from coursekit import config
from coursekit.checkpoints import save_checkpoint
from coursekit.data.mnist import MNIST
from coursekit.losses import elbo_loss
from coursekit.metrics import active_units
from coursekit.models.vae import ImageVAE, VAEConfig, build_vae, vae_loss
from coursekit.recipes.registry import register_recipe
from coursekit.train import fit

MNIST_SEED = 0


MNIST_VALID = 400  # digits held out of the train split to choose the best epoch; the test split stays unseen


MNIST_BATCH = 64


def mnist_loaders(
    n_train: int | None = None, batch_size: int = MNIST_BATCH, seed: int = MNIST_SEED
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train, validation and test loaders of MNIST batches ``{"image": [b, 1, 28, 28], "label": [b]}``.

    The validation set is ``MNIST_VALID`` digits of the train split chosen by ``seed``; the test
    split is never used for training or model choice.

    Args:
        n_train: keep this many training digits (e.g. for FAST mode); None keeps all the others.
        batch_size: training batch size; validation and test use 500.
        seed: chooses the validation digits and the shuffling order.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    train_split = MNIST("train")
    order = torch.randperm(len(train_split), generator=torch.Generator().manual_seed(seed)).tolist()
    valid_idx, train_idx = order[:MNIST_VALID], order[MNIST_VALID:]
    if n_train is not None:
        train_idx = train_idx[:n_train]
    shuffle = torch.Generator().manual_seed(seed)
    return (
        DataLoader(Subset(train_split, train_idx), batch_size=batch_size, shuffle=True, generator=shuffle),
        DataLoader(Subset(train_split, valid_idx), batch_size=500),
        DataLoader(MNIST("test"), batch_size=500),
    )


@torch.no_grad()
def describe_vae(model: ImageVAE, loader: DataLoader) -> dict[str, float | int]:
    """Measure a VAE on ``loader``: ELBO parts (nats per image), mean squared pixel error, active units.

    Returns ``{"elbo_loss", "recon", "kl", "pixel_mse", "active_units"}``; the losses
    use one posterior sample per image under a fixed seed, so repeated calls agree.

    Lesson: lessons/02_vae_mnist.ipynb
    """
    model.eval()
    generator = torch.Generator().manual_seed(0)
    totals = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "pixel_mse": 0.0}
    mus, n = [], 0
    for batch in loader:
        x = batch["image"]
        logits, mu, logvar = model(x, generator=generator)
        parts = elbo_loss(x, logits, mu, logvar)
        for key in ("loss", "recon", "kl"):
            totals[key] += float(parts[key]) * len(x)
        x_hat = torch.sigmoid(model.decode(mu))
        totals["pixel_mse"] += float((x_hat - x).pow(2).mean(dim=(1, 2, 3)).sum())
        mus.append(mu)
        n += len(x)
    return {
        "elbo_loss": totals["loss"] / n,
        "recon": totals["recon"] / n,
        "kl": totals["kl"] / n,
        "pixel_mse": totals["pixel_mse"] / n,
        "active_units": active_units(torch.cat(mus))[0],
    }


def train_mnist_vae(
    vae_config: VAEConfig,
    epochs: int,
    checkpoint_path: str | Path | None = None,
    n_train: int | None = None,
    patience: int | None = 8,
    lr: float = 1e-3,
    beta: float = 1.0,
    seed: int = MNIST_SEED,
    live_plot: bool | str = "auto",
    progress: bool = True,
) -> tuple[ImageVAE, dict]:
    """Train an image VAE on MNIST with the ELBO (KL weighted by ``beta``) and return it with its measurements.

    The model keeps the weights of the best validation epoch. The measurements are
    :func:`describe_vae` on the validation and test sets (keys prefixed ``valid_`` and ``test_``)
    plus ``epochs_run``, ``best_epoch``, ``train_time_s`` (seconds of training on this machine),
    ``train_digits``, ``parameters`` and ``history`` (per-epoch ``train_loss`` and ``valid_loss``).

    Lesson: lessons/02_vae_mnist.ipynb
    """
    config.seed_everything(seed)
    train, valid, test = mnist_loaders(n_train=n_train, seed=seed)
    model = build_vae(vae_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    history = fit(
        model, train, functools.partial(vae_loss, beta=beta), optimizer, valid_loader=valid, epochs=epochs,
        patience=patience, live_plot=live_plot, progress=progress, restore_best=True,
    )
    seconds = time.perf_counter() - start
    metrics = {
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch,
        "train_time_s": round(seconds, 1),
        "train_digits": len(train.dataset),
        "parameters": sum(p.numel() for p in model.parameters()),
        "beta": beta,
        **{f"valid_{k}": v for k, v in describe_vae(model, valid).items()},
        **{f"test_{k}": v for k, v in describe_vae(model, test).items()},
        "history": {key: history.series(key) for key in ("train_loss", "valid_loss")},
    }
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, vae_config, metrics)
    return model, metrics


MNIST_VAES = {  # recipe name -> (config, epochs, beta, description)
    "vae_mnist_linear": (VAEConfig("linear", latent_dim=16), 80, 1.0, "fully connected VAE on MNIST, latent size 16"),
    "vae_mnist_conv": (VAEConfig("conv", latent_dim=16), 60, 1.0, "convolutional VAE on MNIST, latent size 16"),
    "vae_mnist_conv_bn": (VAEConfig("conv_bn", latent_dim=16), 60, 1.0, "convolutional VAE with batch norm, latent 16"),
    "vae_mnist_2d": (VAEConfig("conv", latent_dim=2), 60, 1.0, "convolutional VAE on MNIST, latent size 2 (manifold)"),
    "vae_mnist_2d_beta0": (VAEConfig("conv", latent_dim=2), 60, 0.0,
                           "vae_mnist_2d trained without its KL term (beta 0): the control of lesson 02's section 8"),
}


def _mnist_recipe(name: str):
    vae_config, epochs, beta, _ = MNIST_VAES[name]

    def train(path: Path, ship: bool) -> None:
        _, metrics = train_mnist_vae(vae_config, epochs, checkpoint_path=path, live_plot=False, progress=False,
                                     beta=beta)
        print(f"{name}: test ELBO loss {metrics['test_elbo_loss']:.1f} nats, {metrics['train_time_s']} s")

    return train


for _name, (*_, _description) in MNIST_VAES.items():
    register_recipe(_name, _description)(_mnist_recipe(_name))
