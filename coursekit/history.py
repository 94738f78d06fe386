"""The record :func:`coursekit.train.fit` keeps of a training run: one dict of measurements per epoch.

Lesson: lessons/02_vae_mnist.ipynb
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class History:
    """What :func:`fit` measured, one dict per epoch.

    Each epoch dict holds ``epoch`` (from 1), ``steps`` (optimizer steps so far), ``time_s``
    (seconds since fit started, the only entry that differs between identical runs), ``lr``,
    ``train_<part>`` for every part ``loss_fn`` returns (``train_loss``, ``train_kl``, ...: means
    over the epoch's examples) and ``valid_<part>`` when there is a validation loader.

    Lesson: lessons/02_vae_mnist.ipynb
    """

    epochs: list[dict] = field(default_factory=list)  # one dict per epoch, in order
    best_epoch: int | None = None  # epoch (from 1) with the lowest monitored loss
    stopped_early: bool = False  # True when patience ran out
    stop_reason: str = ""  # starts with "epochs", "patience", "max_steps", "time_budget" or "non_finite"

    def series(self, key: str) -> list:
        """The values of ``key`` over epochs, e.g. ``history.series("valid_loss")``.

        Lesson: lessons/02_vae_mnist.ipynb
        """
        known = sorted({name for epoch in self.epochs for name in epoch})
        if key not in known:
            raise KeyError(f"history has no {key!r}; it records {known}.")
        return [epoch.get(key) for epoch in self.epochs]

    def to_dict(self) -> dict:
        """A plain dict of everything, ready for ``json.dumps``.

        Lesson: lessons/02_vae_mnist.ipynb
        """
        return asdict(self)
