"""coursekit.plot: what each plot draws (pixels, line data, point positions, axis ranges) and its errors."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.stats
import torch
from torchvision.utils import make_grid

from coursekit import audio, config, plot
from coursekit.models.vae import VAEConfig, build_vae
from coursekit.train import History

SR = 16000


@pytest.fixture(autouse=True)
def _close_figures():
    """Each test starts and ends without open pyplot figures."""
    plt.close("all")
    yield
    plt.close("all")


def rendered_rgb(fig) -> np.ndarray:
    """The figure drawn by Agg, as uint8 [height, width, 3]."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3]


def full_axes(size_px: int = 64):
    """Axes covering the whole of a ``size_px`` x ``size_px`` figure, so rendered pixels map to data."""
    fig = plt.figure(figsize=(1, 1), dpi=size_px)
    return fig.add_axes((0, 0, 1, 1))


# ----------------------------------------------------------------------------- image_grid
def test_image_grid_shows_make_grids_output(rng):
    images = torch.rand(6, 1, 8, 8, generator=rng)
    ax = plot.image_grid(images, nrow=3, title="digits")
    expected = make_grid(images, nrow=3, padding=2, pad_value=0.5).permute(1, 2, 0).numpy()
    shown = np.asarray(ax.images[0].get_array())
    assert shown.shape == (22, 32, 3)  # 2 rows and 3 columns of 8 + 2 padding, plus the last padding
    np.testing.assert_allclose(shown, expected)
    assert ax.get_title() == "digits"
    assert rendered_rgb(ax.figure).std() > 20  # the drawn figure is not blank


def test_image_grid_renders_the_pixels_of_the_input():
    image = torch.zeros(1, 1, 8, 8)
    image[..., :4, :] = 1.0  # top half white, bottom half black
    ax = plot.image_grid(image, ax=full_axes(64), padding=0)
    pixels = rendered_rgb(ax.figure).mean(axis=-1)
    assert pixels[4:28].min() > 250 and pixels[36:60].max() < 5


def test_image_grid_rgb_keeps_the_colours(rng):
    images = torch.rand(2, 3, 5, 5, generator=rng)
    shown = np.asarray(plot.image_grid(images, nrow=2, padding=0).images[0].get_array())
    np.testing.assert_allclose(shown[:, 5:], images[1].permute(1, 2, 0).numpy())


def test_image_grid_draws_into_the_given_axes_without_a_new_figure(rng):
    fig, axes = plt.subplots(1, 2)
    ax = plot.image_grid(torch.rand(4, 1, 6, 6, generator=rng), ax=axes[1])
    assert ax is axes[1] and len(ax.images) == 1 and len(axes[0].images) == 0
    assert plt.get_fignums() == [fig.number]


def test_image_grid_accepts_numpy_and_gradients(rng):
    images = torch.rand(2, 1, 4, 4, generator=rng, requires_grad=True)
    expected = make_grid(images.detach(), nrow=8, padding=2, pad_value=0.5).permute(1, 2, 0).numpy()
    for given in (images, images.detach().numpy()):  # a tensor that needs grad, and a numpy array
        shown = np.asarray(plot.image_grid(given).images[0].get_array())
        np.testing.assert_allclose(shown, expected)
    assert images.grad is None and images.requires_grad  # the caller's tensor is left as it was


@pytest.mark.parametrize(
    ("shape", "fix"),
    [((4, 784), "view(-1, 1, 28, 28)"), ((4, 28, 28), "unsqueeze(1)"), ((28,), "batch"), ((4, 2, 8, 8), "C = 1 or 3")],
)
def test_image_grid_wrong_shapes_say_how_to_fix_them(shape, fix):
    with pytest.raises(ValueError, match=r"images has shape .*" + re.escape(fix)):
        plot.image_grid(torch.rand(*shape))


def test_image_grid_refuses_logits_and_names_sigmoid():
    with pytest.raises(ValueError, match=r"images has values in \[-2, 3\].*torch\.sigmoid"):
        plot.image_grid(torch.linspace(-2, 3, 16).reshape(1, 1, 4, 4))


def test_image_grid_refuses_non_arrays():
    with pytest.raises(TypeError, match="images must be a torch.Tensor or numpy array"):
        plot.image_grid([[0.0, 1.0]])


# ----------------------------------------------------------------------------- loss_curves
def make_history() -> History:
    epochs = [
        {"epoch": e, "train_loss": 10 / e, "valid_loss": 12 / e, "train_kl": 1 + e, "valid_kl": 2 + e, "lr": 1e-3}
        for e in (1, 2, 3, 4)
    ]
    return History(epochs=epochs)


def lines_by_label(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def test_loss_curves_default_draws_every_loss_with_its_values():
    ax = plot.loss_curves(make_history())
    lines = lines_by_label(ax)
    assert list(lines) == ["train_loss", "valid_loss"]
    np.testing.assert_allclose(lines["train_loss"].get_ydata(), [10, 5, 10 / 3, 2.5])
    np.testing.assert_allclose(lines["valid_loss"].get_ydata(), [12, 6, 4, 3])
    np.testing.assert_array_equal(lines["valid_loss"].get_xdata(), [1, 2, 3, 4])
    assert ax.get_xlabel() == "epoch" and ax.get_yscale() == "linear"


def test_loss_curves_one_colour_per_part_dashed_validation():
    ax = plot.loss_curves(make_history(), keys=["train_loss", "valid_loss", "train_kl", "valid_kl"])
    lines = lines_by_label(ax)
    assert len(ax.get_lines()) == 4
    np.testing.assert_allclose(lines["valid_kl"].get_ydata(), [3, 4, 5, 6])
    assert lines["train_kl"].get_color() == lines["valid_kl"].get_color() != lines["train_loss"].get_color()
    assert lines["train_kl"].get_linestyle() == "-" and lines["valid_kl"].get_linestyle() == "--"


def test_loss_curves_reads_to_dict_and_plain_dicts_alike():
    history = make_history()
    from_dict = lines_by_label(plot.loss_curves(history.to_dict()))
    np.testing.assert_allclose(from_dict["valid_loss"].get_ydata(), [12, 6, 4, 3])
    plain = plot.loss_curves({"loss": [3.0, 2.0, 1.5]}).get_lines()
    assert len(plain) == 1
    np.testing.assert_array_equal(plain[0].get_xdata(), [1, 2, 3])


def test_loss_curves_log_scale_and_missing_values():
    history = make_history()
    del history.epochs[2]["valid_loss"]  # an epoch without validation
    ax = plot.loss_curves(history, logy=True)
    assert ax.get_yscale() == "log"
    assert np.isnan(lines_by_label(ax)["valid_loss"].get_ydata()[2])


def test_loss_curves_errors_name_the_key_and_what_exists():
    with pytest.raises(KeyError, match=r"no \['valid_recon'\].*train_kl"):
        plot.loss_curves(make_history(), keys=["valid_recon"])
    with pytest.raises(ValueError, match="elbo has values <= 0.*logy=False"):
        plot.loss_curves({"elbo": [-3.0, -2.0]}, keys=["elbo"], logy=True)
    assert plt.get_fignums() == []  # checked before a figure is made
    with pytest.raises(TypeError, match="History or a dict of lists"):
        plot.loss_curves([1.0, 2.0])


# ----------------------------------------------------------------------------- latent_scatter
def test_latent_scatter_2d_places_the_points_at_z(rng):
    z = torch.randn(50, 2, generator=rng)
    ax = plot.latent_scatter(z)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), z.numpy(), rtol=1e-6)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z[0]", "z[1]")


def test_latent_scatter_projects_higher_dims_on_principal_components(rng):
    z = torch.randn(200, 6, generator=rng) * torch.tensor([4.0, 2.0, 1.0, 0.5, 0.3, 0.1]) + 5.0
    ax = plot.latent_scatter(z)
    centred = z.double().numpy() - z.double().numpy().mean(axis=0)
    _, s, vh = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vh[:2].T
    shown = np.asarray(ax.collections[0].get_offsets())
    for k in range(2):  # a principal component is defined up to its sign
        sign = np.sign(shown[:, k] @ expected[:, k])
        np.testing.assert_allclose(shown[:, k], sign * expected[:, k], atol=1e-4)
    share = 100 * s[:2] ** 2 / (s**2).sum()
    assert ax.get_xlabel() == f"PC 1 of z ({share[0]:.0f}% of variance)"
    assert ax.get_ylabel().startswith("PC 2") and f"{share[1]:.0f}%" in ax.get_ylabel()


def test_pca_recovers_a_line_and_its_sign_is_fixed(rng):
    t = torch.linspace(-3, 3, 100)
    direction = torch.tensor([0.6, -0.8, 0.0, 0.0])
    z = t[:, None] * direction + 0.001 * torch.randn(100, 4, generator=rng)
    points, explained = plot.pca_2d(z)
    assert explained[0] > 0.999
    np.testing.assert_allclose(points[:, 0].abs(), t.abs(), atol=0.01)
    np.testing.assert_allclose(points[:, 0], -plot.pca_2d(-z)[0][:, 0], atol=1e-5)  # mirrored data, mirrored plot


def test_latent_scatter_colours_classes_and_lists_them_in_the_legend(rng):
    z = torch.randn(30, 2, generator=rng)
    labels = torch.tensor([0, 1, 2] * 10)
    ax = plot.latent_scatter(z, labels=labels, label_name="digit")
    colors = ax.collections[0].get_facecolors()
    assert len(colors) == 30
    np.testing.assert_array_equal(colors[0], colors[3])
    assert not np.array_equal(colors[0], colors[1])
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "digit"
    assert [text.get_text() for text in legend.get_texts()] == ["0", "1", "2"]


def test_latent_scatter_eleven_classes_keep_the_first_ten_apart(rng):
    """With 11-20 classes the first ten get tab20's dark shades (as distinct as tab10), then the light ones."""
    z = torch.randn(44, 2, generator=rng)
    ax = plot.latent_scatter(z, labels=[f"family {i:02d}" for i in range(11)] * 4)
    colors = ax.collections[0].get_facecolors()[:11, :3]
    dark, light = plt.get_cmap("tab20").colors[0::2], plt.get_cmap("tab20").colors[1::2]
    np.testing.assert_allclose(colors[:10], dark, atol=1e-6)
    np.testing.assert_allclose(colors[10], light[0], atol=1e-6)
    assert len({tuple(c) for c in colors.round(4)}) == 11


def test_latent_scatter_string_labels_and_continuous_labels(rng):
    z = torch.randn(40, 3, generator=rng)
    ax = plot.latent_scatter(z, labels=["chorale", "folk"] * 20)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["chorale", "folk"]
    pitch = torch.linspace(24, 84, 40)
    ax = plot.latent_scatter(z, labels=pitch, label_name="pitch")
    np.testing.assert_allclose(ax.collections[0].get_array(), pitch.numpy())
    assert len(ax.figure.axes) == 2 and ax.figure.axes[1].get_ylabel() == "pitch"  # the colorbar


def test_latent_scatter_errors(rng):
    with pytest.raises(ValueError, match=r"z has shape \[10, 1\]"):
        plot.latent_scatter(torch.randn(10, 1, generator=rng))
    with pytest.raises(ValueError, match=r"labels has shape \[9\]; expected one label per latent, \[10\]"):
        plot.latent_scatter(torch.randn(10, 2, generator=rng), labels=torch.zeros(9))


# ----------------------------------------------------------------------------- latent_manifold
def colour_decoder(extent: float, calls: list):
    """Images [n, 3, 4, 4] whose red is z[0] and green is z[1], mapped from [-extent, extent] to [0, 1]."""

    def decode(z: torch.Tensor) -> torch.Tensor:
        calls.append(z.clone())
        rg = (z + extent) / (2 * extent)
        rgb = torch.cat([rg, torch.zeros(len(z), 1)], dim=1)
        return rgb[:, :, None, None].expand(-1, -1, 4, 4)

    return decode


def test_latent_manifold_decodes_the_grid_in_reading_order():
    calls = []
    plot.latent_manifold(colour_decoder(2.0, calls), extent=2.0, n=3)
    assert len(calls) == 1
    expected = torch.tensor([[-2, 2], [0, 2], [2, 2], [-2, 0], [0, 0], [2, 0], [-2, -2], [0, -2], [2, -2]])
    np.testing.assert_allclose(calls[0], expected.float())


def test_latent_manifold_puts_each_image_where_its_latent_lies():
    ax = plot.latent_manifold(colour_decoder(3.0, []), extent=3.0, n=5)
    grid = np.asarray(ax.images[0].get_array())
    assert grid.shape == (20, 20, 3)  # no padding: the cells touch
    red, green = grid[2::4, 2::4, 0], grid[2::4, 2::4, 1]  # one pixel per cell, [row, column]
    np.testing.assert_allclose(red, np.tile(np.linspace(0, 1, 5), (5, 1)), atol=1e-6)  # z[0] grows rightwards
    np.testing.assert_allclose(green, np.tile(np.linspace(1, 0, 5)[:, None], (1, 5)), atol=1e-6)  # z[1] upwards
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-3", "-1.5", "0", "1.5", "3"]


def test_manifold_quantile_spacing_has_equal_prior_mass_between_points():
    values = plot.manifold_values(extent=2.0, n=7, spacing="quantile").double()
    assert values[0] == pytest.approx(-2.0, abs=1e-5) and values[-1] == pytest.approx(2.0, abs=1e-5)
    assert values[3] == pytest.approx(0.0, abs=1e-6)
    probabilities = scipy.stats.norm.cdf(values.numpy())
    np.testing.assert_allclose(np.diff(probabilities), np.diff(probabilities).mean(), rtol=1e-4)
    assert values[4] - values[3] < values[6] - values[5]  # points crowd near 0
    np.testing.assert_allclose(plot.manifold_values(2.0, 5, "linear"), [-2, -1, 0, 1, 2])


def test_latent_manifold_with_a_two_dimensional_vae():
    torch.manual_seed(0)
    model = build_vae(VAEConfig(kind="linear", latent_dim=2, hidden_dims=(16,))).eval()
    ax = plot.latent_manifold(lambda z: torch.sigmoid(model.decode(z)), n=4)
    assert np.asarray(ax.images[0].get_array()).shape == (4 * 28, 4 * 28, 3)
    assert ax.get_title() == "decoded latent grid (linear spacing)"


def test_latent_manifold_refuses_decoders_of_other_latent_sizes():
    model = build_vae(VAEConfig(kind="linear", latent_dim=16, hidden_dims=(16,)))
    with pytest.raises(ValueError, match=r"decode failed on z of shape \[9, 2\].*latent_dim=2"):
        plot.latent_manifold(model.decode, n=3)
    linear = torch.nn.Linear(16, 4)
    with pytest.raises(ValueError, match="needs a decoder of 2-D latents"):
        plot.latent_manifold(lambda z: linear(z).reshape(-1, 1, 2, 2), n=3)


def test_decoders_get_z_on_the_device_of_their_module():
    on_meta = torch.nn.Linear(2, 4, device="meta")
    assert config.device_of(on_meta.forward) == torch.device("meta")
    assert config.device_of(on_meta) == torch.device("meta")
    assert config.device_of(lambda z: on_meta(z)) == torch.device("cpu")  # a lambda hides it: pass device=


def test_latent_manifold_checks_what_decode_returns():
    with pytest.raises(ValueError, match=r"decode\(z\) has values in .*sigmoid"):
        plot.latent_manifold(lambda z: 5 * z[:, :1, None, None].expand(-1, 1, 2, 2), n=3)
    with pytest.raises(ValueError, match="decode returned 1 images for 9 latents"):
        plot.latent_manifold(lambda z: torch.zeros(1, 1, 2, 2), n=3)
    with pytest.raises(ValueError, match="spacing='log'"):
        plot.latent_manifold(lambda z: z, spacing="log")


# ----------------------------------------------------------------------------- waveform and spectrogram
def tone(freq: float = 1000.0, duration: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(duration * SR)) / SR
    return 0.5 * torch.sin(2 * torch.pi * freq * t)


def test_waveform_plots_samples_against_seconds():
    x = tone(duration=0.5)
    ax = plot.waveform(x[None], SR, title="tone")
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), np.arange(8000) / SR)
    np.testing.assert_allclose(line.get_ydata(), x.numpy())
    assert ax.get_xlim() == (0, 0.5) and ax.get_xlabel() == "time (s)"


def test_waveform_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"x has shape \[2, 100\].*to_mono"):
        plot.waveform(torch.zeros(2, 100), SR)
    with pytest.raises(ValueError, match="sr=0"):
        plot.waveform(torch.zeros(100), 0)


def mesh_of(ax):
    """(dB values [bins, frames], time edges [frames + 1], frequency edges [bins + 1]) of a spectrogram."""
    mesh = ax.collections[0]
    coordinates = mesh.get_coordinates()
    values = np.asarray(mesh.get_array()).reshape(coordinates.shape[0] - 1, coordinates.shape[1] - 1)
    return values, coordinates[0, :, 0], coordinates[:, 0, 1]


@pytest.mark.parametrize("kind", ["linear", "mel"])
def test_spectrogram_axes_span_the_duration_and_nyquist(kind):
    ax = plot.spectrogram(tone(duration=0.75), SR, kind=kind)
    _, times, freqs = mesh_of(ax)
    assert times[0] == 0 and times[-1] == pytest.approx(0.75)
    assert freqs[0] == 0 and freqs[-1] == pytest.approx(SR / 2)
    assert ax.get_ylim() == (0, SR / 2) and ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "frequency (Hz)"


@pytest.mark.parametrize("kind", ["linear", "mel"])
@pytest.mark.parametrize("freq", [300.0, 3000.0])  # not 1000 Hz, which is also 1000 mel
def test_spectrogram_shows_a_tone_at_its_frequency(kind, freq):
    values, _, freqs = mesh_of(plot.spectrogram(tone(freq), SR, kind=kind))
    loudest = values.mean(axis=1).argmax()
    assert freqs[loudest] <= freq <= freqs[loudest + 1]


def test_spectrogram_shows_a_burst_at_its_time(rng):
    x = torch.zeros(SR)
    x[8000:9600] = torch.randn(1600, generator=rng) * 0.3  # noise from 0.5 s to 0.6 s
    values, times, _ = mesh_of(plot.spectrogram(x, SR, kind="linear", hop_length=256))
    loud = np.flatnonzero(values.mean(axis=0) > -40)
    assert times[loud[0]] == pytest.approx(0.5, abs=0.04) and times[loud[-1] + 1] == pytest.approx(0.6, abs=0.04)


def test_linear_spectrogram_values_are_the_stft_in_db():
    x = tone(440.0, 0.25)
    values, _, _ = mesh_of(plot.spectrogram(x, SR, kind="linear", n_fft=512, floor_db=-60))
    expected = audio.amplitude_to_db(audio.stft(x, n_fft=512).abs(), floor_db=-60)
    np.testing.assert_allclose(values, expected.numpy(), atol=1e-4)
    assert values.max() == pytest.approx(0.0, abs=1e-4) and values.min() >= -60


def test_mel_spectrogram_labels_hz_and_colorbar_is_optional():
    ax = plot.spectrogram(tone(), SR, colorbar=False)
    assert ax.get_yscale() == "function" and len(ax.figure.axes) == 1
    assert list(ax.get_yticks()) == [0, 500, 1000, 2000, 4000, 8000]
    ax = plot.spectrogram(tone(), SR)
    assert len(ax.figure.axes) == 2 and ax.figure.axes[1].get_ylabel() == "dB below the loudest bin"


def test_spectrogram_errors():
    with pytest.raises(ValueError, match="kind='cqt': use 'mel' or 'linear'"):
        plot.spectrogram(tone(), SR, kind="cqt")
    with pytest.raises(ValueError, match="x has 100 samples but the window is n_fft=1024"):
        plot.spectrogram(torch.zeros(100), SR)


# ----------------------------------------------------------------------------- pianoroll
def test_pianoroll_colours_each_hand_at_its_pitch_and_time():
    from coursekit.data.pianoroll import LOWEST, N_PITCHES

    roll = torch.zeros(32, 2 * N_PITCHES)
    roll[0:8, 60 - LOWEST] = 1  # right hand C4 for two quarter notes
    roll[8:16, N_PITCHES + 48 - LOWEST] = 1  # left hand C3 for the next two
    roll[16:20, 55 - LOWEST] = roll[16:20, N_PITCHES + 55 - LOWEST] = 1  # both hands on G3 for a quarter
    ax = plot.pianoroll(roll)
    image = np.asarray(ax.images[0].get_array())  # [pitch, steps, 3], lowest pitch first
    assert image.shape == (N_PITCHES, 32, 3)
    blue, orange, white = np.array([0.12, 0.47, 0.71]), np.array([1.0, 0.5, 0.05]), np.ones(3)
    np.testing.assert_allclose(image[60 - LOWEST, 0:8], np.tile(blue, (8, 1)))
    np.testing.assert_allclose(image[48 - LOWEST, 8:16], np.tile(orange, (8, 1)))
    np.testing.assert_allclose(image[60 - LOWEST, 8:], np.tile(white, (24, 1)))
    np.testing.assert_allclose(image[55 - LOWEST, 16:20], np.tile(blue * orange, (4, 1)))  # two inks
    assert ax.images[0].get_extent() == [0, 8, LOWEST - 0.5, LOWEST + N_PITCHES - 0.5]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["right hand", "left hand", "both hands"]
    np.testing.assert_allclose(ax.get_legend().get_lines()[2].get_color(), blue * orange)


def test_pianoroll_marks_onsets_and_shades_probabilities():
    from coursekit.data.pianoroll import LOWEST, N_PITCHES

    roll = torch.zeros(16, 2 * N_PITCHES)
    roll[:, 70 - LOWEST] = 0.5
    onsets = torch.zeros_like(roll)
    onsets[4, N_PITCHES + 40 - LOWEST] = 1
    ax = plot.pianoroll(roll, onsets)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[1.0, 40.0]])  # step 4 = quarter 1, pitch 40
    shade = np.asarray(ax.images[0].get_array())[70 - LOWEST, 0]
    assert np.all((shade > [0.12, 0.47, 0.71]) & (shade < 1))  # half-way between blue and white


def test_pianoroll_errors():
    with pytest.raises(ValueError, match=r"roll has shape \[4, 16, 102\].*roll\[0\]"):
        plot.pianoroll(torch.zeros(4, 16, 102))
    with pytest.raises(ValueError, match=r"roll has shape \[16, 88\]; expected \[steps, 102\]"):
        plot.pianoroll(torch.zeros(16, 88))
    with pytest.raises(ValueError, match=r"roll has values outside \[0, 1\].*sigmoid"):
        plot.pianoroll(torch.full((16, 102), -3.0))
    with pytest.raises(ValueError, match=r"onsets has shape \[16, 51\]"):
        plot.pianoroll(torch.zeros(16, 102), onsets=torch.zeros(16, 51))
    assert plt.get_fignums() == []
