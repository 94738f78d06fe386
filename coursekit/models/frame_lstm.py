"""An LSTM that continues a spectrogram: from a window of frames, predict the next one (source 001).

Source 001 fed a bidirectional LSTM sequences of 16 whole spectrograms and let it predict the next
one. NSynth notes are single notes, so here the items of the sequence are the STFT frames of one
note (lesson 04's features, 16 ms apart): a window of ``window`` frames goes in, the next frame
comes out, and :meth:`FrameLSTM.continue_frames` feeds its own predictions back to extend a seed.
Bidirectional layers read the window both ways (the whole window is known, so nothing leaks from
the future); dropout 0.2 between layers and a squared-error loss, as the document.

Shapes (default settings)::

    window   [batch, 16, 256]    16 frames of 256 bins, values in [0, 1]
    next     [batch, 256]
    features [batch, 1, 256, frames]   (continue_frames works on lesson 04's images)

Lesson: lessons/08_model_comparison.ipynb
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.config import as_config, config_from_dict


@dataclass
class FrameLSTMConfig:
    """Everything that builds a :class:`FrameLSTM`; stored beside its weights.

    Args:
        n_freq: bins per frame.
        window: frames the model reads to predict the next one.
        hidden: LSTM units per direction.
        layers: stacked bidirectional LSTM layers.
        dropout: between layers, during training.
    """

    n_freq: int = 256
    window: int = 16
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.2

    def __post_init__(self) -> None:
        for name in ("n_freq", "window", "hidden", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout!r} must be in [0, 1).")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FrameLSTMConfig:
        return config_from_dict(cls, values)


class FrameLSTM(nn.Module):
    """Bidirectional LSTM over a window of frames, then a linear layer and a sigmoid: the next frame.

    Lesson: lessons/08_model_comparison.ipynb
    """

    def __init__(self, config: FrameLSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(config.n_freq, config.hidden, num_layers=config.layers, batch_first=True,
                            bidirectional=True, dropout=config.dropout if config.layers > 1 else 0.0)  # fmt: skip
        self.out = nn.Linear(2 * config.hidden, config.n_freq)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """The next frame ``[batch, n_freq]`` after ``window [batch, window, n_freq]``."""
        c = self.config
        if window.dim() != 3 or tuple(window.shape[1:]) != (c.window, c.n_freq):
            raise ValueError(f"window must be [batch, {c.window}, {c.n_freq}] (frames in time order), "
                             f"got {list(window.shape)}.")  # fmt: skip
        states, _ = self.lstm(window)
        forward_last, backward_first = states[:, -1, : c.hidden], states[:, 0, c.hidden :]
        return torch.sigmoid(self.out(torch.cat([forward_last, backward_first], dim=1)))

    @torch.no_grad()
    def continue_frames(self, seed: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Extend feature images ``seed [batch, 1, n_freq, >= window]`` by ``n_frames`` predicted frames.

        Each new frame is predicted from the last ``window`` frames, its own earlier predictions
        included. Returns ``[batch, 1, n_freq, seed frames + n_frames]``, in eval mode.
        """
        self.eval()
        if seed.dim() != 4 or seed.shape[1] != 1 or seed.shape[2] != self.config.n_freq:
            raise ValueError(f"seed must be features [batch, 1, {self.config.n_freq}, frames], got {list(seed.shape)}.")
        if seed.shape[3] < self.config.window:
            raise ValueError(f"seed has {seed.shape[3]} frames; the model needs at least window={self.config.window}.")
        frames = seed[:, 0].transpose(1, 2)  # [batch, frames, n_freq]
        for _ in range(n_frames):
            frames = torch.cat([frames, self(frames[:, -self.config.window :])[:, None]], dim=1)
        return frames.transpose(1, 2)[:, None]


def build_frame_lstm(config: FrameLSTMConfig | dict | None = None) -> FrameLSTM:
    """A :class:`FrameLSTM` from a config, its dict (as stored in checkpoints) or the defaults.

    Lesson: lessons/08_model_comparison.ipynb
    """
    return FrameLSTM(as_config(FrameLSTMConfig, config))


def frame_windows(features: torch.Tensor, window: int, frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (window, next frame) pair of feature images ``[n, 1, n_freq, total]``, using the first ``frames``.

    Returns:
        ``(windows [pairs, window, n_freq], targets [pairs, n_freq])`` with ``pairs = n * (frames - window)``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    frames = features.shape[-1] if frames is None else frames
    seq = features[:, 0, :, :frames].transpose(1, 2)  # [n, frames, n_freq]
    if frames <= window:
        raise ValueError(f"frames={frames} must exceed window={window}: nothing is left to predict.")
    windows = seq.unfold(1, window, 1)[:, : frames - window]  # [n, frames - window, n_freq, window]
    return windows.permute(0, 1, 3, 2).reshape(-1, window, seq.shape[2]), seq[:, window:].reshape(-1, seq.shape[2])


def frame_lstm_loss(model: FrameLSTM, batch: dict) -> dict[str, torch.Tensor]:
    """Squared error of the predicted next frame (source 001's loss) and its mean absolute error.

    ``batch`` is ``{"window": [batch, window, n_freq], "next": [batch, n_freq]}``.

    Lesson: lessons/08_model_comparison.ipynb
    """
    predicted = model(batch["window"])
    return {"loss": F.mse_loss(predicted, batch["next"]), "mae": (predicted - batch["next"]).abs().mean()}
