"""coursekit.interpolation against known values, and coursekit.widgets driven without a browser."""

from __future__ import annotations

import io
import math

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from coursekit import interpolation, widgets
from coursekit.models.vae import VAEConfig, build_vae

SR = 16000


def png_pixels(value) -> np.ndarray:
    """The RGB pixels [height, width, 3] of the PNG bytes an ``ipywidgets.Image`` holds."""
    assert bytes(value[:8]) == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(bytes(value))).convert("RGB"))


class Recorder:
    """A ``render`` that records each z and returns a 4x4 grey image of brightness sigmoid(z[0] + z[1])."""

    def __init__(self):
        self.calls: list[torch.Tensor] = []

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        self.calls.append(z.clone())
        return torch.sigmoid(z[:, 0] + z[:, 1]).reshape(1, 1, 1, 1).expand(1, 1, 4, 4)


def grey(z0_plus_z1: float) -> int:
    return round(255 * (1 / (1 + math.exp(-z0_plus_z1))))


# ----------------------------------------------------------------------------- lerp and slerp
def test_lerp_known_values_and_many_positions():
    z_a, z_b = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    torch.testing.assert_close(interpolation.lerp(z_a, z_b, 0.25), torch.tensor([1.0, 1.0]))
    path = interpolation.lerp(z_a, z_b, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(path, torch.stack([z_a, torch.tensor([2.0, 0.0]), z_b]))


def test_slerp_hits_both_ends(rng):
    z_a, z_b = torch.randn(8, generator=rng), torch.randn(8, generator=rng)
    torch.testing.assert_close(interpolation.slerp(z_a, z_b, 0.0), z_a)
    torch.testing.assert_close(interpolation.slerp(z_a, z_b, 1.0), z_b)


def test_slerp_of_orthogonal_unit_vectors_is_the_quarter_circle():
    e0, e1 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    torch.testing.assert_close(interpolation.slerp(e0, e1, 0.5), torch.tensor([1.0, 1.0, 0.0]) / math.sqrt(2))
    angle = math.pi / 2 * 0.3
    torch.testing.assert_close(interpolation.slerp(e0, e1, 0.3), torch.tensor([math.cos(angle), math.sin(angle), 0.0]))


def test_slerp_stays_on_the_sphere_at_constant_angular_speed(rng):
    z_a, z_b = torch.randn(16, generator=rng, dtype=torch.float64), torch.randn(16, generator=rng, dtype=torch.float64)
    z_a, z_b = z_a / z_a.norm(), z_b / z_b.norm()
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    path = interpolation.slerp(z_a, z_b, t)
    assert path.shape == (11, 16)
    torch.testing.assert_close(path.norm(dim=-1), torch.ones(11, dtype=torch.float64))
    omega = torch.arccos(z_a @ z_b)
    torch.testing.assert_close(torch.arccos((path @ z_a).clamp(-1, 1)), t * omega)
    assert (interpolation.lerp(z_a, z_b, 0.5).norm() < 0.99).item()  # the straight line cuts inside the sphere


def test_slerp_keeps_equal_norms(rng):
    z_a, z_b = torch.randn(2, 10, generator=rng)
    z_a, z_b = 3 * z_a / z_a.norm(), 3 * z_b / z_b.norm()
    path = interpolation.slerp(z_a, z_b, torch.rand(5, generator=rng))
    torch.testing.assert_close(path.norm(dim=-1), torch.full((5,), 3.0))


def test_slerp_of_parallel_vectors_is_linear():
    z_a = torch.tensor([1.0, -2.0, 0.5])
    for t in (0.0, 0.3, 1.0):
        result = interpolation.slerp(z_a, 2.5 * z_a, t)
        assert torch.isfinite(result).all()
        torch.testing.assert_close(result, interpolation.lerp(z_a, 2.5 * z_a, t))


def test_slerp_works_row_by_row_and_near_parallel_in_float32(rng):
    z_a, z_b = torch.randn(3, 4, generator=rng), torch.randn(3, 4, generator=rng)
    rows = torch.stack([interpolation.slerp(a, b, 0.4) for a, b in zip(z_a, z_b, strict=True)])
    torch.testing.assert_close(interpolation.slerp(z_a, z_b, 0.4), rows)
    nearly = z_a[0] + 1e-6 * torch.randn(4, generator=rng)
    torch.testing.assert_close(interpolation.slerp(z_a[0], nearly, 0.5), interpolation.lerp(z_a[0], nearly, 0.5))


def test_slerp_refuses_opposite_and_zero_vectors():
    z = torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="opposite directions.*mode='linear'"):
        interpolation.slerp(z, -z, 0.5)
    with pytest.raises(ValueError, match="zero vector.*mode='linear'"):
        interpolation.slerp(z, torch.zeros(2), 0.5)


def test_interpolation_input_errors():
    with pytest.raises(ValueError, match=r"z_a has shape \[3\] but z_b has \[4\]"):
        interpolation.lerp(torch.zeros(3), torch.zeros(4), 0.5)
    with pytest.raises(TypeError, match="z_b must be a float torch.Tensor"):
        interpolation.slerp(torch.ones(3), [1.0, 2.0, 3.0], 0.5)
    with pytest.raises(ValueError, match="mode='cubic'"):
        interpolation.interpolate(torch.ones(3), torch.ones(3), 0.5, mode="cubic")
    with pytest.raises(ValueError, match=r"t has shape \[2, 2\]"):
        interpolation.lerp(torch.ones(3), torch.ones(3), torch.zeros(2, 2))


# ----------------------------------------------------------------------------- latent_explorer
def test_latent_explorer_renders_the_slider_values():
    render = Recorder()
    explorer = widgets.latent_explorer(render, latent_dim=5, n_sliders=3)
    assert isinstance(explorer, ipywidgets.VBox)
    assert [s.description for s in explorer.sliders] == ["z[0]", "z[1]", "z[2]"]
    torch.testing.assert_close(render.calls[0], torch.zeros(1, 5))
    before = png_pixels(explorer.image.value)
    assert np.all(before == grey(0.0))

    explorer.sliders[1].value = 1.5
    torch.testing.assert_close(render.calls[-1], torch.tensor([[0.0, 1.5, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(explorer.z, torch.tensor([0.0, 1.5, 0.0, 0.0, 0.0]))
    after = png_pixels(explorer.image.value)
    assert np.all(after == grey(1.5)) and after.shape == before.shape
    assert len(render.calls) == 2


def test_latent_explorer_enlarges_small_images_with_sharp_pixels():
    explorer = widgets.latent_explorer(Recorder(), latent_dim=2)
    assert png_pixels(explorer.image.value).shape == (224, 224, 3)  # 4 pixels x 56


def test_latent_explorer_keeps_base_z_in_the_other_dimensions():
    render = Recorder()
    base = torch.tensor([0.5, -1.0, 2.0, 4.0])
    explorer = widgets.latent_explorer(render, 4, dims=[1, 3], base_z=base, extent=2.0)
    assert [s.value for s in explorer.sliders] == [-1.0, 4.0]
    assert explorer.sliders[1].max == 4.0  # widened to hold the base value
    explorer.sliders[0].value = 0.25
    torch.testing.assert_close(render.calls[-1], torch.tensor([[0.5, 0.25, 2.0, 4.0]]))
    torch.testing.assert_close(base, torch.tensor([0.5, -1.0, 2.0, 4.0]))  # the caller's tensor is untouched


def test_latent_explorer_with_an_image_vae():
    torch.manual_seed(0)
    model = build_vae(VAEConfig(kind="linear", latent_dim=6, hidden_dims=(16,))).eval()
    explorer = widgets.latent_explorer(lambda z: torch.sigmoid(model.decode(z)), 6, n_sliders=2)
    first = bytes(explorer.image.value)
    explorer.sliders[0].value = 3.0
    expected = torch.sigmoid(model.decode(torch.tensor([[3.0, 0, 0, 0, 0, 0]]))).detach()
    torch.testing.assert_close(explorer.rendered, expected)
    pixels = png_pixels(explorer.image.value)[::8, ::8, 0]  # 28 pixels enlarged 8 times
    np.testing.assert_allclose(pixels, expected[0, 0].numpy() * 255, atol=0.51)
    assert bytes(explorer.image.value) != first


def test_latent_explorer_audio_plays_the_rendered_signal():
    def render(z):
        t = torch.arange(4000) / SR
        return 0.5 * torch.sin(2 * torch.pi * (440 + 100 * z[0, 0]) * t).reshape(1, 1, -1), SR

    figures = plt.get_fignums()
    explorer = widgets.latent_explorer(render, 3, kind="audio")
    first = bytes(explorer.audio.value)
    explorer.sliders[0].value = 2.0
    x, sr = sf.read(io.BytesIO(bytes(explorer.audio.value)), dtype="float32")
    assert sr == SR and bytes(explorer.audio.value) != first
    np.testing.assert_allclose(x, explorer.rendered[0].reshape(-1).numpy(), atol=1 / 32768)
    assert png_pixels(explorer.image.value).std() > 10  # its spectrogram
    assert plt.get_fignums() == figures  # drawn off pyplot, nothing left open
    assert explorer.sliders[0].continuous_update is False  # audio renders when the slider is released


def test_signal_to_wav_scales_loud_signals_down():
    x, sr = sf.read(io.BytesIO(widgets.signal_to_wav(torch.tensor([0.0, 2.0, -4.0]), SR)), dtype="float32")
    np.testing.assert_allclose(x, [0.0, 0.5, -1.0], atol=1 / 32768)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latent_dim": 2, "n_sliders": 3}, r"n_sliders=3 must be between 1 and latent_dim=2"),
        ({"latent_dim": 0}, r"latent_dim=0 must be a whole number >= 1"),
        ({"latent_dim": 4, "dims": [1, 4]}, r"dims=\[1, 4\] must be distinct dimensions in 0..3"),
        ({"latent_dim": 4, "dims": [1], "n_sliders": 1}, "not both"),
        ({"latent_dim": 4, "base_z": torch.zeros(5)}, r"base_z has shape \[5\]; expected \[4\]"),
        ({"latent_dim": 4, "kind": "video"}, "kind='video'"),
    ],
)
def test_latent_explorer_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        widgets.latent_explorer(Recorder(), **kwargs)


def test_render_errors_at_creation_raise_and_after_a_move_show_in_the_status():
    with pytest.raises(ValueError, match=r"render\(z\) has values in .*sigmoid"):
        widgets.latent_explorer(lambda z: 10 * Recorder()(z), 2)
    with pytest.raises(TypeError, match=r"render\(z\) must return \(x, sr\)"):
        widgets.latent_explorer(lambda z: torch.zeros(100), 2, kind="audio")

    def fragile(z):
        if z[0, 0] > 1:
            raise RuntimeError("decoder exploded")
        return Recorder()(z)

    explorer = widgets.latent_explorer(fragile, 2)
    explorer.sliders[0].value = 2.0
    assert "RuntimeError: decoder exploded" in explorer.status.value
    explorer.sliders[0].value = 0.5
    assert explorer.status.value == ""


# ----------------------------------------------------------------------------- interpolation_slider
@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_interpolation_slider_renders_the_path(mode):
    render = Recorder()
    z_a, z_b = torch.tensor([2.0, 0.0, 1.0]), torch.tensor([0.0, -2.0, 1.0])
    slider = widgets.interpolation_slider(render, z_a, z_b, mode=mode, steps=4)
    assert slider.slider.value == 0.0 and slider.slider.step == 0.25
    torch.testing.assert_close(render.calls[-1], z_a[None])
    slider.slider.value = 0.75
    expected = interpolation.interpolate(z_a, z_b, 0.75, mode)
    torch.testing.assert_close(render.calls[-1], expected[None])
    assert np.all(png_pixels(slider.image.value) == grey(float(expected[0] + expected[1])))
    slider.slider.value = 1.0
    torch.testing.assert_close(render.calls[-1], z_b[None])


def test_interpolation_slider_encodes_inputs_with_encode():
    def encode(x):  # like ImageVAE.encode: (mu, logvar), each [1, latent_dim]
        return x.mean(dim=(2, 3)).repeat(1, 2), torch.zeros(1, 2)

    render = Recorder()
    slider = widgets.interpolation_slider(render, torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), encode=encode)
    torch.testing.assert_close(slider.z_b, torch.tensor([1.0, 1.0]))
    slider.slider.value = 0.5
    torch.testing.assert_close(render.calls[-1], torch.tensor([[0.5, 0.5]]))


def test_interpolation_slider_bad_arguments():
    with pytest.raises(ValueError, match=r"z_a has shape \[3\] but z_b has \[2\]"):
        widgets.interpolation_slider(Recorder(), torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="opposite directions"):
        widgets.interpolation_slider(Recorder(), torch.ones(2), -torch.ones(2), mode="slerp")
    with pytest.raises(ValueError, match=r"z_a has shape \[2, 3\]; expected one latent"):
        widgets.interpolation_slider(Recorder(), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="steps=0"):
        widgets.interpolation_slider(Recorder(), torch.zeros(2), torch.ones(2), steps=0)


def test_the_listening_grid_puts_one_playable_wav_in_each_named_cell():
    import base64
    import re

    from coursekit.widgets import listening_grid

    tone = 0.5 * torch.sin(torch.arange(800) / 5)
    grid = listening_grid({"brass": {"cvae": tone, "gan": 2 * tone}, "flute <1>": {"gan": tone}}, 8000, "demo")
    table = grid.value
    assert table.count("<audio") == 3 and table.count("<td></td>") == 1  # flute has no cvae cell
    assert "<th>cvae</th><th>gan</th>" in table and "flute &lt;1&gt;" in table and "<caption>demo</caption>" in table
    wavs = re.findall(r"base64,([A-Za-z0-9+/=]+)", table)
    first, sr = sf.read(io.BytesIO(base64.b64decode(wavs[0])))
    assert sr == 8000 and np.allclose(first, tone.numpy(), atol=1e-4)
    loud, _ = sf.read(io.BytesIO(base64.b64decode(wavs[1])))
    assert np.abs(loud).max() == pytest.approx(1.0, abs=1e-4)  # scaled down to fit, not clipped
    with pytest.raises(ValueError, match=r"sounds must be \{row name: \{column name: signal\}\}"):
        listening_grid({}, 8000)
