"""Image VAEs for 1x28x28 digits in [0, 1]: fully connected (MLP-VAE), convolutional, and
convolutional with batch norm, sharing one interface.

Every model maps images ``x [batch, 1, 28, 28]`` to a diagonal Gaussian posterior and back::

    mu, logvar = model.encode(x)                   # each [batch, latent_dim]
    z = model.reparameterize(mu, logvar)           # z = mu + exp(logvar / 2) * eps
    logits = model.decode(z)                       # Bernoulli logits [batch, 1, 28, 28]
    logits, mu, logvar = model(x)                  # the three steps at once
    images = model.sample(16)                      # [16, 1, 28, 28] in [0, 1], from the prior

Build one from a :class:`VAEConfig` with :func:`build_vae`; the same config, stored as a dict in
each checkpoint, rebuilds it: ``load_checkpoint(path, build=build_vae)``.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields

import torch
from torch import nn

from coursekit.config import as_config, config_from_dict
from coursekit.losses import elbo_loss
from coursekit.models import check_generator, reparameterize

IMAGE_SHAPE = (1, 28, 28)
KINDS = ("linear", "conv", "conv_bn")


@dataclass
class VAEConfig:
    """Everything that builds an image VAE; stored beside the weights in each checkpoint.

    Lesson: lessons/02_vae_mnist.ipynb
    """

    kind: str = "conv"  # "linear" (MLP-VAE, fully connected), "conv", or "conv_bn" (conv with batch norm)
    latent_dim: int = 16  # 16 reconstructs digits sharply and leaves room to see unused dims; 2 for the manifold plot
    hidden_dims: tuple[int, ...] = (256, 128)  # "linear" only: hidden layer widths, 784 -> 256 -> 128 -> latent
    channels: tuple[int, int] = (32, 64)  # conv kinds only: channels of the two stride-2 convs, 28 -> 14 -> 7 pixels

    def __post_init__(self) -> None:
        self.hidden_dims = _as_tuple(self.hidden_dims)
        self.channels = _as_tuple(self.channels)
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} is not a VAE kind: use one of {list(KINDS)}.")
        if isinstance(self.latent_dim, bool) or not isinstance(self.latent_dim, int) or self.latent_dim < 1:
            raise ValueError(f"latent_dim={self.latent_dim!r} must be a whole number >= 1 (e.g. 2 or 16).")
        if not self.hidden_dims or not _positive_ints(self.hidden_dims):
            raise ValueError(f"hidden_dims={self.hidden_dims!r} must be one or more positive widths, e.g. (256, 128).")
        if not _positive_ints(self.channels) or len(self.channels) != 2:
            raise ValueError(
                f"channels={self.channels!r} must be two positive channel counts, e.g. (32, 64): "
                "two stride-2 convolutions take 28x28 to 7x7."
            )

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists), for checkpoints.

        Lesson: lessons/02_vae_mnist.ipynb
        """
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> VAEConfig:
        """The config that :meth:`to_dict` wrote; missing keys take their defaults.

        Raises:
            ValueError: for a key that is not a field, naming the fields.

        Lesson: lessons/02_vae_mnist.ipynb
        """
        return config_from_dict(cls, values)


def _as_tuple(values):
    """Lists (as JSON stores them) become tuples; anything else is left for validation to reject."""
    return tuple(values) if isinstance(values, list | tuple) else values


def _positive_ints(values) -> bool:
    if not isinstance(values, tuple):
        return False
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


class ImageVAE(nn.Module):
    """The shared VAE interface; subclasses set ``encoder`` (image -> features) and ``decoder``.

    ``encoder`` maps ``x [batch, 1, 28, 28]`` to features ``[batch, n_features]``, two linear
    heads give ``mu`` and ``logvar``, and ``decoder`` maps ``z [batch, latent_dim]`` to logits
    ``[batch, 1, 28, 28]``.

    Lesson: lessons/02_vae_mnist.ipynb
    """

    def __init__(self, config: VAEConfig, encoder: nn.Module, decoder: nn.Module, n_features: int) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.to_mu = nn.Linear(n_features, config.latent_dim)
        self.to_logvar = nn.Linear(n_features, config.latent_dim)
        self.decoder = decoder

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters of images ``x``.

        Args:
            x: Tensor [batch, 1, 28, 28], float pixels in [0, 1].

        Returns:
            ``(mu, logvar)``, each Tensor [batch, latent_dim].

        Lesson: lessons/02_vae_mnist.ipynb
        """
        _check_images(x)
        features = self.encoder(x)
        return self.to_mu(features), self.to_logvar(features)

    def reparameterize(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``z ~ N(mu, exp(logvar))`` as ``mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``.

        The noise is an input, so gradients flow to ``mu`` and ``logvar`` (the reparameterisation trick).

        Args:
            mu: Tensor [batch, latent_dim].
            logvar: Tensor [batch, latent_dim].
            generator: a ``torch.Generator`` on ``mu``'s device for reproducible noise; default the global one.

        Returns:
            z: Tensor [batch, latent_dim].

        Lesson: lessons/02_vae_mnist.ipynb
        """
        return reparameterize(mu, logvar, generator)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of the images for latents ``z``; ``torch.sigmoid`` of them is the image.

        Args:
            z: Tensor [batch, latent_dim].

        Returns:
            Tensor [batch, 1, 28, 28] of logits.

        Lesson: lessons/02_vae_mnist.ipynb
        """
        latent_dim = self.config.latent_dim
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != latent_dim:
            shape = list(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z has shape {shape}; expected [batch, {latent_dim}] (latent_dim={latent_dim}).")
        return self.decoder(z)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample one ``z`` per image, decode.

        Args:
            x: Tensor [batch, 1, 28, 28], float pixels in [0, 1].
            generator: for the sampling noise; default the global generator.

        Returns:
            ``(logits [batch, 1, 28, 28], mu [batch, latent_dim], logvar [batch, latent_dim])``:
            the arguments :func:`coursekit.losses.elbo_loss` takes after ``x``.

        Lesson: lessons/02_vae_mnist.ipynb
        """
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` latents drawn from the prior N(0, I) into images (without gradients).

        Call ``model.eval()`` first for the batch-norm kind, so its layers use their running statistics.

        Args:
            n: how many images, >= 1.
            generator: a ``torch.Generator`` on the model's device; default the global one.

        Returns:
            Tensor [n, 1, 28, 28] of pixel probabilities in [0, 1].

        Lesson: lessons/02_vae_mnist.ipynb
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} must be a whole number >= 1.")
        device = self.to_mu.weight.device
        check_generator(generator, device)
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=device)
        return torch.sigmoid(self.decode(z))


class MLPVAE(ImageVAE):
    """Fully connected VAE (kind ``"linear"``): 784 -> hidden_dims (ReLU) -> latent, and back.

    Lesson: lessons/02_vae_mnist.ipynb
    """

    def __init__(self, config: VAEConfig) -> None:
        n_pixels = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
        widths = config.hidden_dims
        encoder = nn.Sequential(nn.Flatten(), *_mlp([n_pixels, *widths]))
        decoder = nn.Sequential(
            *_mlp([config.latent_dim, *reversed(widths)]),
            nn.Linear(widths[0], n_pixels),
            nn.Unflatten(1, IMAGE_SHAPE),
        )
        super().__init__(config, encoder, decoder, n_features=widths[-1])


def _mlp(widths: list[int]) -> list[nn.Module]:
    """Linear + ReLU layers through ``widths``."""
    return [m for a, b in itertools.pairwise(widths) for m in (nn.Linear(a, b), nn.ReLU())]


class ConvVAE(ImageVAE):
    """Convolutional VAE (kinds ``"conv"`` and ``"conv_bn"``).

    Encoder: two 4x4 stride-2 convolutions (28 -> 14 -> 7 pixels, ``channels`` wide, ReLU), then
    linear heads from the 7x7 feature map to ``mu`` and ``logvar``. Decoder: linear to the 7x7
    map, then two 4x4 stride-2 transposed convolutions back to 28x28. ``"conv_bn"`` adds a
    ``BatchNorm2d`` after every convolution except the decoder's output layer.

    Lesson: lessons/02_vae_mnist.ipynb
    """

    def __init__(self, config: VAEConfig) -> None:
        c1, c2 = config.channels
        norm = config.kind == "conv_bn"
        encoder = nn.Sequential(
            *_conv_block(nn.Conv2d(IMAGE_SHAPE[0], c1, 4, stride=2, padding=1), norm),
            *_conv_block(nn.Conv2d(c1, c2, 4, stride=2, padding=1), norm),
            nn.Flatten(),
        )
        decoder = nn.Sequential(
            nn.Linear(config.latent_dim, c2 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (c2, 7, 7)),
            *_conv_block(nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), norm),
            nn.ConvTranspose2d(c1, IMAGE_SHAPE[0], 4, stride=2, padding=1),
        )
        super().__init__(config, encoder, decoder, n_features=c2 * 7 * 7)


def _conv_block(conv: nn.Conv2d | nn.ConvTranspose2d, norm: bool) -> list[nn.Module]:
    """``conv``, then batch norm when ``norm``, then ReLU."""
    return [conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU()] if norm else [conv, nn.ReLU()]


def build_vae(config: VAEConfig | dict) -> ImageVAE:
    """The image VAE a config describes: :class:`MLPVAE` for ``"linear"``, :class:`ConvVAE` otherwise.

    Args:
        config: a :class:`VAEConfig`, or the dict :meth:`VAEConfig.to_dict` wrote (as stored in a checkpoint).

    Returns:
        The model, freshly initialised from the global torch seed (``torch.manual_seed`` first to repeat it).

    Example::

        model = build_vae(VAEConfig(kind="linear", latent_dim=2))
        model, ckpt = load_checkpoint("checkpoints/vae_mnist_conv.pt", build=build_vae)

    Lesson: lessons/02_vae_mnist.ipynb
    """
    config = as_config(VAEConfig, config)
    return MLPVAE(config) if config.kind == "linear" else ConvVAE(config)


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor [batch, 1, 28, 28], got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(f"x has dtype {x.dtype}; the VAE needs float pixels in [0, 1]: use x.float() / 255.")
    if tuple(x.shape[1:]) == IMAGE_SHAPE:
        return
    hints = {
        (784,): "reshape it with x.view(-1, 1, 28, 28)",
        (28, 28): "add the channel dimension with x.unsqueeze(1)",
    }
    hint = hints.get(tuple(x.shape[1:]), "the models take 28x28 grey images with a batch and a channel dimension")
    raise ValueError(f"x has shape {list(x.shape)}; expected [batch, 1, 28, 28]: {hint}.")



def vae_loss(model: ImageVAE, batch: dict, beta: float = 1.0) -> dict[str, torch.Tensor]:
    """The negative ELBO of a batch, in the form :func:`coursekit.train.fit` takes.

    Args:
        model: an image VAE.
        batch: ``{"image": Tensor [batch, 1, 28, 28] in [0, 1], ...}``, as MNIST loaders yield.
        beta: weight of the KL term (1.0: the plain ELBO).

    Returns:
        ``{"loss", "recon", "kl"}`` as :func:`coursekit.losses.elbo_loss` returns them (nats per image).

    Example::

        fit(model, train_loader, vae_loss, optimizer)
        fit(model, train_loader, functools.partial(vae_loss, beta=4.0), optimizer)

    Lesson: lessons/02_vae_mnist.ipynb
    """
    x = batch["image"]
    logits, mu, logvar = model(x)
    return elbo_loss(x, logits, mu, logvar, beta=beta)
