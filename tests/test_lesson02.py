"""Tests for the library code that lesson 02 (lessons/02_vae_mnist.ipynb) added: the latent-grid tick labels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from coursekit import plot  # noqa: E402
from coursekit.plot.latent import _tick_label  # noqa: E402


def _decode(z: torch.Tensor) -> torch.Tensor:
    return torch.full((z.shape[0], 1, 4, 4), 0.5)


@pytest.mark.parametrize(
    ("value", "label"),
    [(-2.9802322387695312e-08, "0"), (3e-09, "0"), (-0.0, "0"), (0.857142865657806, "0.86"), (-3.0, "-3"),
     (2.1, "2.1")],
)
def test_tick_label_rounds_linspace_noise_to_zero(value, label):
    assert _tick_label(torch.tensor(value)) == label


def test_latent_manifold_odd_grid_labels_its_centre_zero():
    # torch.linspace(-3, 3, 15)[7] is about -3e-08 in float32, which used to be printed as a tick
    assert float(torch.linspace(-3.0, 3.0, 15)[7]) != 0.0
    ax = plot.latent_manifold(_decode, extent=3.0, n=15)
    expected = ["-3", "-2.1", "-0.86", "0", "0.86", "2.1", "3"]
    assert [t.get_text() for t in ax.get_xticklabels()] == expected
    assert [t.get_text() for t in ax.get_yticklabels()] == expected[::-1]  # z[1] grows upwards: the top row first
    plt.close("all")
