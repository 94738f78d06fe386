"""A WaveNet autoencoder (source 001, after Engel et al. 2017): a non-causal encoder squeezes a note
into a slow code, and a causal WaveNet decoder predicts every sample from the samples before it and
the code, one mu-law class of 256 at a time.

Encoder: a 1x1 convolution, dilated residual convolutions (non-causal, ReLU), a 1x1 convolution to
``code_channels``, then average pooling by ``hop``: 16 kHz audio becomes ``16000 / hop`` code frames a
second. Decoder: the mu-law classes of the past samples (embedded), a causal convolution, then residual
blocks of gated dilated causal convolutions (``tanh(W_f x + V_f c) * sigmoid(W_g x + V_g c)``, where
``c`` is the code repeated up to the sample rate), with skip connections summed into two 1x1
convolutions that give 256 logits per sample.

The decoder is autoregressive: training sees every sample at once (teacher forcing), generation
makes one sample per step (:meth:`WaveNetAE.generate`, with the per-layer cache of "fast WaveNet"),
the reason it is slow.

Shapes (default settings)::

    audio   [batch, 1, samples]          in [-1, 1], samples divisible by hop
    code    [batch, 16, samples / 512]
    logits  [batch, 256, samples]        logits[..., t] predicts sample t from samples < t

Lesson: lessons/08_model_comparison.ipynb
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from coursekit import audio
from coursekit.config import as_config, config_from_dict


@dataclass
class WaveNetAEConfig:
    """Everything that builds a :class:`WaveNetAE`; stored beside its weights.

    Args:
        dilations: the decoder's residual layers, one dilation each (source 001 compared
            ``(1, 2, 4, 8, 16)`` with ``(1, 4, 16)``).
        channels: residual channels of both stacks; ``skip_channels`` of the skip path.
        code_channels: numbers per code frame; ``hop``: samples per code frame.
        encoder_dilations: the encoder's residual layers.
        classes: mu-law classes (mu = classes - 1).
    """

    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)
    channels: int = 32
    skip_channels: int = 64
    code_channels: int = 16
    hop: int = 512
    encoder_dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    classes: int = 256

    def __post_init__(self) -> None:
        self.dilations, self.encoder_dilations = tuple(self.dilations), tuple(self.encoder_dilations)
        for name in ("channels", "skip_channels", "code_channels", "hop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        for name in ("dilations", "encoder_dilations"):
            values = getattr(self, name)
            if not values or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in values):
                raise ValueError(f"{name}={values!r}: one whole number >= 1 per layer, e.g. (1, 2, 4, 8, 16).")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 2:
            raise ValueError(f"classes={self.classes!r} must be a whole number >= 2 (256 for 8-bit mu-law).")

    @property
    def receptive_field(self) -> int:
        """Past samples the decoder hears: 2 for the first causal convolution, plus each dilation."""
        return 2 + sum(self.dilations)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> WaveNetAEConfig:
        return config_from_dict(cls, values)


class _CausalConv(nn.Conv1d):
    """A kernel-2 convolution padded on the left only, so output t sees inputs t - dilation and t."""

    def __init__(self, c_in: int, c_out: int, dilation: int) -> None:
        super().__init__(c_in, c_out, 2, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.dilation[0], 0)))


class _GatedBlock(nn.Module):
    def __init__(self, channels: int, skip_channels: int, code_channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = _CausalConv(channels, 2 * channels, dilation)
        self.cond = nn.Conv1d(code_channels, 2 * channels, 1)
        self.res, self.skip = nn.Conv1d(channels, channels, 1), nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        filt, gate = (self.conv(x) + self.cond(code)).chunk(2, dim=1)
        h = torch.tanh(filt) * torch.sigmoid(gate)
        return x + self.res(h), self.skip(h)


class WaveNetAE(nn.Module):
    """Encoder to a slow code, causal gated WaveNet decoder to 256 mu-law logits per sample.

    Lesson: lessons/08_model_comparison.ipynb
    """

    def __init__(self, config: WaveNetAEConfig) -> None:
        super().__init__()
        self.config = c = config
        self.enc_in = nn.Conv1d(1, c.channels, 1)
        self.enc_layers = nn.ModuleList(nn.Conv1d(c.channels, c.channels, 3, dilation=d, padding=d)
                                        for d in c.encoder_dilations)  # fmt: skip
        self.enc_out = nn.Conv1d(c.channels, c.code_channels, 1)
        self.embed = nn.Embedding(c.classes, c.channels)  # the past sample's class: a one-hot times a matrix
        self.dec_in = _CausalConv(c.channels, c.channels, 1)
        self.blocks = nn.ModuleList(_GatedBlock(c.channels, c.skip_channels, c.code_channels, d) for d in c.dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(c.skip_channels, c.skip_channels, 1), nn.ReLU(),
                                  nn.Conv1d(c.skip_channels, c.classes, 1))  # fmt: skip

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[-1] == 0 or x.shape[-1] % self.config.hop:
            raise ValueError(f"audio must be [batch, 1, samples] with samples a multiple of hop={self.config.hop}, "
                             f"got {list(x.shape)}: trim or pad it.")  # fmt: skip

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code ``[batch, code_channels, samples / hop]`` of audio ``[batch, 1, samples]``."""
        self._check(x)
        h = self.enc_in(x)
        for layer in self.enc_layers:
            h = h + layer(F.relu(h))
        return F.avg_pool1d(self.enc_out(F.relu(h)), self.config.hop)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Mu-law classes (int64, 0 to classes - 1) of audio in [-1, 1]."""
        return audio.mu_law_encode(x.clamp(-1, 1), self.config.classes - 1)

    def decode_logits(self, classes: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, classes, samples]``: position t from the classes before t (teacher forcing).

        Args:
            classes: int64 ``[batch, 1, samples]``, the true past (shifted right by one inside).
            code: ``[batch, code_channels, frames]``, repeated ``samples / frames`` times.
        """
        shifted = F.pad(classes[:, 0], (1, 0), value=self.config.classes // 2)[:, :-1]  # silence before the start
        x = self.dec_in(self.embed(shifted).transpose(1, 2))
        code = code.repeat_interleave(classes.shape[-1] // code.shape[-1], dim=-1)
        skips = 0
        for block in self.blocks:
            x, skip = block(x, code)
            skips = skips + skip
        return self.head(skips)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``[batch, classes, samples]`` of audio ``[batch, 1, samples]``."""
        return self.decode_logits(self.quantize(x), self.encode(x))

    @torch.no_grad()
    def generate(self, code: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
                 teacher: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Audio ``[batch, 1, frames * hop]`` from a code ``[batch, code_channels, frames]``, one sample a step.

        Each step computes only the newest position of every layer: each layer keeps the inputs it
        saw in a ring buffer as long as its dilation (the "fast WaveNet" cache), so a step costs one
        column of the network however long the receptive field. The next class is drawn from the
        softmax of the logits divided by ``temperature``. With ``teacher`` (int64 classes ``[batch, 1,
        samples]``) the true classes are fed back instead of the drawn ones, and the logits are returned
        ``[batch, classes, samples]`` (for checking against :meth:`decode_logits`).
        """
        self.eval()
        c, n, batch = self.config, code.shape[-1] * self.config.hop, len(code)
        conditions = [block.cond(code) + block.conv.bias[:, None] for block in self.blocks]  # [batch, 2C, frames]
        taps = [torch.cat([b.conv.weight[..., 0], b.conv.weight[..., 1]], dim=1).T for b in self.blocks]  # [2C, 2C]
        outs = [torch.cat([b.res.weight[..., 0], b.skip.weight[..., 0]]).T for b in self.blocks]  # [C, C + skip]
        out_bias = [torch.cat([b.res.bias, b.skip.bias]) for b in self.blocks]
        queues = [torch.zeros(batch, c.channels, d) for d in c.dilations]
        previous_in = torch.zeros(batch, c.channels)  # the causal padding before the first input
        last = torch.full((batch,), c.classes // 2, dtype=torch.long)  # silence before the start
        w_in = torch.cat([self.dec_in.weight[..., 0], self.dec_in.weight[..., 1]], dim=1).T
        drawn, all_logits = torch.empty(batch, n, dtype=torch.long), []
        for t in range(n):
            current_in = self.embed(last)
            x = torch.cat([previous_in, current_in], dim=1) @ w_in + self.dec_in.bias
            previous_in, skips = current_in, 0
            for tap, out, bias, queue, condition, d in zip(taps, outs, out_bias, queues, conditions, c.dilations,
                                                           strict=True):  # fmt: skip
                filt, gate = (torch.cat([queue[..., t % d], x], dim=1) @ tap + condition[..., t // c.hop]).chunk(2, 1)
                queue[..., t % d] = x
                h = (torch.tanh(filt) * torch.sigmoid(gate)) @ out + bias
                res, skip = h.split([c.channels, c.skip_channels], dim=1)
                x, skips = x + res, skips + skip
            logits = self.head(skips[..., None])[..., 0]
            if teacher is not None:
                all_logits.append(logits)
                last = teacher[:, 0, t]
            else:
                last = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator)[:, 0]
            drawn[:, t] = last
        if teacher is not None:
            return torch.stack(all_logits, dim=-1)
        return audio.mu_law_decode(drawn[:, None], c.classes - 1)


def build_wavenet_ae(config: WaveNetAEConfig | dict | None = None) -> WaveNetAE:
    """A :class:`WaveNetAE` from a config, its dict (as stored in checkpoints) or the defaults.

    Lesson: lessons/08_model_comparison.ipynb
    """
    return WaveNetAE(as_config(WaveNetAEConfig, config))


def wavenet_loss(model: WaveNetAE, batch: dict | torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy of the true mu-law class of every sample, in nats per sample, and the share predicted right.

    Returns ``{"loss", "accuracy"}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    x = batch["audio"] if isinstance(batch, dict) else batch
    target = model.quantize(x)
    logits = model.decode_logits(target, model.encode(x))
    return {"loss": F.cross_entropy(logits, target[:, 0]),
            "accuracy": (logits.argmax(dim=1) == target[:, 0]).float().mean()}  # fmt: skip
