"""Loss terms for the course's generative models, each a plain function of tensors.

Conventions: a loss sums over every non-batch dimension (pixels, latent dimensions, samples) and
averages over the batch, so its value is "nats per example" and does not change with the batch
size. Functions named ``*_nll`` are negative log-likelihoods of the data under the decoder;
``kl_*`` are KL divergences of the encoder's posterior from the prior; :func:`elbo_loss` combines
them into the dict ``{"loss", <parts>...}`` that :func:`coursekit.train.fit` logs part by part.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "gaussian")
_LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- checks
def _check_tensor(t: torch.Tensor, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}: use torch.as_tensor({name}).")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {t.dtype}: use {name}.float().")
    if t.dim() == 0:
        raise ValueError(f"{name} is a scalar: losses need a batch dimension first, e.g. shape [batch, ...].")


def _check_same_shape(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    _check_tensor(a, a_name)
    _check_tensor(b, b_name)
    if a.shape != b.shape:
        raise ValueError(
            f"{a_name} has shape {list(a.shape)} but {b_name} has {list(b.shape)}: they must match "
            "(did the decoder output [batch, 784] for images of [batch, 1, 28, 28]? reshape one to the other)."
        )


def _per_example_mean(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values [batch, ...]`` over all non-batch dimensions, then average over the batch."""
    return values.reshape(values.shape[0], -1).sum(dim=1).mean()


# ----------------------------------------------------------------------------- KL terms
def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, exp(logvar)) || N(0, 1) ) for each latent dimension, in nats.

    The closed form ``0.5 * (mu**2 + exp(logvar) - 1 - logvar)``: zero exactly when ``mu = 0`` and
    ``logvar = 0`` (the posterior equals the prior), positive otherwise.

    Args:
        mu: Tensor [batch, latent] (or any shape, e.g. [batch, latent, frames]), posterior means.
        logvar: Tensor of the same shape, log-variances of the posterior.

    Returns:
        Tensor of the same shape as ``mu``: the KL of each dimension of each example.

    Example::

        kl_normal(torch.zeros(8, 2), torch.zeros(8, 2))  # all zeros

    Lesson: lessons/02_vae_mnist.ipynb
    """
    _check_same_shape(mu, "mu", logvar, "logvar")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL of the posterior from the standard normal prior: summed over latent dims, batch mean.

    Args:
        mu: Tensor [batch, latent] (or [batch, latent, frames]), posterior means.
        logvar: Tensor of the same shape, posterior log-variances.

    Returns:
        Tensor [] in nats per example: the KL term of the ELBO.

    Example::

        mu, logvar = model.encode(x)
        kl = kl_divergence(mu, logvar)

    Lesson: lessons/02_vae_mnist.ipynb
    """
    return _per_example_mean(kl_normal(mu, logvar))


def kl_gaussians(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL( N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p)) ) element by element, in nats.

    ``0.5 * (logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)**2) / exp(logvar_p) - 1)``: zero
    exactly when the two Gaussians are equal; :func:`kl_normal` is the case ``mu_p = 0, logvar_p =
    0``. Lesson 06 uses it to fit a model's prediction ``(mu_p, logvar_p)`` to another model's
    posterior ``(mu_q, logvar_q)`` (source 004, section 4.2, objective 2).

    Args:
        mu_q, logvar_q, mu_p, logvar_p: Tensors of one shape.

    Returns:
        Tensor of that shape.

    Lesson: lessons/06_latent_vae.ipynb
    """
    for value, name in ((logvar_q, "logvar_q"), (mu_p, "mu_p"), (logvar_p, "logvar_p")):
        _check_same_shape(mu_q, "mu_q", value, name)
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1)


# ----------------------------------------------------------------------------- likelihoods
def gaussian_nll(x: torch.Tensor, x_hat: torch.Tensor, logvar: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Negative log-likelihood of ``x`` under N(x_hat, exp(logvar)): summed per example, batch mean.

    Includes the constant ``0.5 * log(2 pi)`` per element, so the value is a true NLL in nats and
    can be compared across models; with ``logvar = 0`` it is ``0.5 * squared error + constant``.

    Args:
        x: Tensor [batch, ...], the data.
        x_hat: Tensor of the same shape, the decoder's mean.
        logvar: the decoder's log-variance: a float, or a Tensor that broadcasts to ``x``
            (e.g. learned per pixel); default 0.0 (unit variance).

    Returns:
        Tensor [] in nats per example.

    Example::

        gaussian_nll(x, model_mean(z))

    Lesson: lessons/02_vae_mnist.ipynb
    """
    _check_same_shape(x, "x", x_hat, "x_hat")
    logvar = torch.as_tensor(logvar, dtype=x.dtype, device=x.device)
    nll = 0.5 * (_LOG_2PI + logvar + (x - x_hat).pow(2) / logvar.exp())
    return _per_example_mean(nll.expand_as(x))


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``x`` under Bernoulli(sigmoid(logits)): summed per example, batch mean.

    Takes logits, not probabilities, for numerical stability (``torch.sigmoid(logits)`` is the
    image). ``x`` may be grey levels in [0, 1], not only 0 and 1.

    Args:
        logits: Tensor [batch, ...], e.g. [batch, 1, 28, 28] from a VAE decoder.
        x: Tensor of the same shape, values in [0, 1].

    Returns:
        Tensor [] in nats per example.

    Raises:
        ValueError: if a value of ``x`` lies outside [0, 1].

    Example::

        bernoulli_nll(model.decode(z), images)

    Lesson: lessons/02_vae_mnist.ipynb
    """
    _check_same_shape(logits, "logits", x, "x")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"x has values in [{float(x.min()):.3g}, {float(x.max()):.3g}] but a Bernoulli likelihood needs [0, 1]: "
            "scale images with x / 255, or use likelihood='gaussian' for data that is not in [0, 1]."
        )
    return _per_example_mean(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))


# ----------------------------------------------------------------------------- ELBO
def elbo_loss(
    x: torch.Tensor,
    logits_or_mean: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
    likelihood: str = "bernoulli",
) -> dict[str, torch.Tensor]:
    """The VAE objective: reconstruction NLL plus ``beta`` times the KL to the prior.

    With ``beta = 1`` the loss is the negative ELBO, an upper bound on ``-log p(x)`` (lower is
    better) when the likelihood fits the data: a Bernoulli likelihood on grey pixels (MNIST's
    anti-aliased edges) has a floor above zero, the pixels' own binary entropy (about 46 nats per
    digit, lesson 02), so the "bound" is then on a quantity that is not a log-likelihood of the
    grey image; ``beta > 1`` is the beta-VAE; ``beta < 1`` (or a warm-up, :func:`beta_warmup`) lets
    the decoder learn before the KL pulls the posterior to the prior.

    Args:
        x: Tensor [batch, ...], the data, e.g. images [batch, 1, 28, 28] in [0, 1].
        logits_or_mean: Tensor of the same shape from the decoder: Bernoulli logits for
            ``likelihood="bernoulli"``, the Gaussian mean (unit variance) for ``"gaussian"``.
        mu: Tensor [batch, latent], posterior means from the encoder.
        logvar: Tensor [batch, latent], posterior log-variances.
        beta: weight of the KL term, >= 0; default 1.0.
        likelihood: ``"bernoulli"`` (default; :func:`bernoulli_nll`) or ``"gaussian"``
            (:func:`gaussian_nll` with ``logvar = 0``).

    Returns:
        ``{"loss": recon + beta * kl, "recon": ..., "kl": ...}``, each a Tensor [] in nats per example.

    Example::

        logits, mu, logvar = model(x)
        parts = elbo_loss(x, logits, mu, logvar, beta=beta_warmup(step, 1000))
        parts["loss"].backward()

    Lesson: lessons/02_vae_mnist.ipynb
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood={likelihood!r} is not known: use one of {list(LIKELIHOODS)}.")
    _check_beta(beta, "beta")
    _check_same_shape(mu, "mu", logvar, "logvar")
    _check_tensor(x, "x")
    if mu.shape[0] != x.shape[0]:
        raise ValueError(f"x has a batch of {x.shape[0]} but mu has {mu.shape[0]}: pass the encoder's output for x.")
    if likelihood == "bernoulli":
        recon = bernoulli_nll(logits_or_mean, x)
    else:
        recon = gaussian_nll(x, logits_or_mean)
    kl = kl_divergence(mu, logvar)
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def _check_beta(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0 (1.0 gives the plain ELBO).")


def beta_warmup(step: int, warmup_steps: int, beta_max: float = 1.0) -> float:
    """KL weight that grows linearly from 0 to ``beta_max`` over ``warmup_steps``, then stays there.

    Args:
        step: the optimizer step, from 0.
        warmup_steps: steps to reach ``beta_max``; 0 means ``beta_max`` from the start.
        beta_max: the final weight, >= 0; default 1.0.

    Returns:
        ``beta_max * min(1, step / warmup_steps)``.

    Example::

        [beta_warmup(s, 4) for s in range(6)]  # [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]

    Lesson: lessons/02_vae_mnist.ipynb
    """
    for value, name in ((step, "step"), (warmup_steps, "warmup_steps")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name}={value!r} must be a whole number >= 0.")
    _check_beta(beta_max, "beta_max")
    if warmup_steps == 0:
        return float(beta_max)
    return float(beta_max) * min(1.0, step / warmup_steps)


# ----------------------------------------------------------------------------- sparse 0/1 targets (lesson 07)
def positive_weight(dataset: Iterable, key: str = "roll") -> float:
    """The natural ``pos_weight`` of a set of rolls: the number of 0 cells over the number of 1 cells.

    With it, BCE weighs all the "note on" cells as much as all the "note off" cells together, so
    a decoder cannot win by predicting silence everywhere.

    Args:
        dataset: items that are Tensors [steps, n_pitches] (or [batch, steps, n_pitches]) or dicts
            holding one under ``key``: a PianoRolls dataset, a Subset of one, a DataLoader, a list.
        key: the dict key of the roll; default ``"roll"``.

    Returns:
        ``zeros / ones`` as a float (e.g. about 40 when 2.5 % of the cells are on).

    Raises:
        ValueError: when the rolls hold no 1 at all, or a value other than 0 and 1.

    Example::

        w = positive_weight(train_set)   # then pianoroll_vae_loss(model, batch, pos_weight=w)

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    ones, total = 0, 0
    for item in dataset:
        roll = item[key] if isinstance(item, dict) else item
        roll = torch.as_tensor(roll)
        if roll.numel() and not ((roll == 0) | (roll == 1)).all():
            raise ValueError(f"the rolls must hold only 0 and 1; found values in [{roll.min()}, {roll.max()}].")
        ones += int(roll.sum())
        total += roll.numel()
    if ones == 0:
        raise ValueError(f"the dataset's rolls ({total} cells) hold no 1: pos_weight = zeros / ones is undefined.")
    return (total - ones) / ones


def weighted_bce(logits: torch.Tensor, roll: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy with the "note on" cells weighted by ``pos_weight``: per-window sum, batch mean.

    Per cell: ``-(pos_weight * y * log sigmoid(l) + (1 - y) * log(1 - sigmoid(l)))``, in nats.

    Args:
        logits: Tensor [batch, steps, n_pitches] from the decoder.
        roll: Tensor of the same shape, the 0/1 target.
        pos_weight: weight of the 1 cells, > 0 (1.0: plain BCE; see :func:`positive_weight`).

    Returns:
        Tensor [] in (weighted) nats per window.

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if logits.shape != roll.shape:
        raise ValueError(f"logits have shape {list(logits.shape)} but roll has {list(roll.shape)}: they must match.")
    if isinstance(pos_weight, bool) or not isinstance(pos_weight, numbers.Real) or not 0 < pos_weight < math.inf:
        raise ValueError(f"pos_weight={pos_weight!r} must be a positive number (1.0 for plain BCE).")
    weight = torch.tensor(float(pos_weight), dtype=logits.dtype, device=logits.device)
    cells = F.binary_cross_entropy_with_logits(logits, roll, pos_weight=weight, reduction="none")
    return cells.reshape(len(cells), -1).sum(dim=1).mean()


def calibrated_threshold(pos_weight: float) -> float:
    """The probability threshold that means "on more often than not" for a decoder trained with ``pos_weight``.

    Weighted BCE is minimised by ``p = w q / (w q + 1 - q)`` where ``q`` is the true probability
    that the cell is on and ``w = pos_weight``: the weight inflates every probability. ``q > 0.5``
    becomes ``p > w / (1 + w)``, so thresholding at 0.5 turns on every cell with ``q > 1 / (1 + w)``
    (with ``w`` about 58, cells on less than 2 % of the time), far more notes than the data has.

    Args:
        pos_weight: the weight the decoder was trained with, > 0.

    Returns:
        ``pos_weight / (1 + pos_weight)`` (0.5 for plain BCE).

    Example::

        model.generate(z, threshold=calibrated_threshold(ckpt["metrics"]["pos_weight"]))

    Lesson: lessons/07_pianoroll_gru_vae.ipynb
    """
    if isinstance(pos_weight, bool) or not isinstance(pos_weight, numbers.Real) or not 0 < pos_weight < math.inf:
        raise ValueError(f"pos_weight={pos_weight!r} must be a positive number (1.0 for plain BCE).")
    return float(pos_weight) / (1.0 + float(pos_weight))


# ----------------------------------------------------------------------------- MMD (lesson 05)
WAE_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # the kernel widths the WAE paper's code sums over


def mmd_imq(
    z: torch.Tensor,
    prior: torch.Tensor | None = None,
    scales: tuple[float, ...] = WAE_SCALES,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Unbiased estimate of MMD² between codes ``z`` and the prior N(0, I), inverse multiquadric kernel.

    The Wasserstein autoencoder's regulariser (Tolstikhin et al., 2018): instead of pulling each
    posterior towards the prior (the KL of a VAE), it pulls the *distribution* of all codes
    towards it. With ``k(x, y) = C / (C + ||x - y||^2)`` and ``C = 2 d s`` for prior variance 1
    (``d`` the code size), summed over the widths ``s`` in ``scales``::

        MMD^2 = mean_{i != j} k(z_i, z_j) + mean_{i != j} k(p_i, p_j) - 2 mean_{i, j} k(z_i, p_j)

    The inverse multiquadric kernel has heavier tails than a Gaussian (RBF) kernel, so codes far
    from the prior still get a gradient; the WAE paper found it the more reliable of the two.
    The estimate is unbiased: zero in expectation when ``z`` comes from the prior (one draw can be
    slightly negative).

    Args:
        z: Tensor [n, d] of codes (n >= 2); for frame-wise latents ``[batch, d, frames]`` pass
            ``z.transpose(1, 2).reshape(-1, d)``.
        prior: Tensor [m, d] of prior samples (m >= 2); default ``n`` fresh draws from N(0, I).
        scales: kernel widths ``s``, each > 0.
        generator: for the default prior draws.

    Returns:
        Tensor [], differentiable with respect to ``z``.

    Lesson: lessons/05_waveform_vae.ipynb
    """
    _check_tensor(z, "z")
    if z.dim() != 2 or len(z) < 2:
        raise ValueError(f"z has shape {list(z.shape)}; expected [n >= 2, d] (flatten frames into rows first).")
    if prior is None:
        prior = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    _check_tensor(prior, "prior")
    if prior.dim() != 2 or len(prior) < 2 or prior.shape[1] != z.shape[1]:
        raise ValueError(f"prior has shape {list(prior.shape)}; expected [m >= 2, {z.shape[1]}] like z.")
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"scales={scales!r}: give one or more positive kernel widths, e.g. {WAE_SCALES}.")
    n, m, d = len(z), len(prior), z.shape[1]
    pairs = {"zz": (z, z), "pp": (prior, prior), "zp": (z, prior)}
    distances = {key: torch.cdist(a, b).pow(2) for key, (a, b) in pairs.items()}  # squared Euclidean
    total = z.new_zeros(())
    for s in scales:
        c = 2.0 * d * s
        k = {key: c / (c + value) for key, value in distances.items()}
        total = total + (k["zz"].sum() - k["zz"].diagonal().sum()) / (n * (n - 1))
        total = total + (k["pp"].sum() - k["pp"].diagonal().sum()) / (m * (m - 1)) - 2.0 * k["zp"].mean()
    return total
