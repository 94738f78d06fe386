"""Lesson 09's shipped checkpoints: what their recipes recorded holds for the weights that were shipped."""

import pytest
import torch

from coursekit.checkpoints import load_pretrained
from coursekit.models.audio_vae import build_audio_vae
from coursekit.models.diffusion import build_denoiser, diffusion_loss
from coursekit.models.vq import build_vq_audio, perplexity
from coursekit.recipes.adversarial import FINE_TUNINGS
from coursekit.recipes.latent_diffusion import DIFF_SEED
from coursekit.recipes.latent_vae import TEST_LOOPS, loop_trajectories
from coursekit.recipes.waveform_vae import waveform_clips


@pytest.fixture(scope="module")
def lesson05():
    model, checkpoint = load_pretrained("waveform_vae", build_audio_vae)
    return model.eval(), checkpoint["metrics"]


@pytest.mark.parametrize("name", list(FINE_TUNINGS))
def test_fine_tuning_froze_the_encoder_and_started_from_the_shipped_model(lesson05, name):
    first, first_metrics = lesson05
    tuned, checkpoint = load_pretrained(name, build_audio_vae)
    encoders = zip(first.encoder.state_dict().items(), tuned.encoder.state_dict().values(), strict=True)
    for (key, before), after in encoders:
        assert torch.equal(before, after), f"{name}: encoder weight {key} changed"
    decoders = zip(first.decoder.parameters(), tuned.decoder.parameters(), strict=True)
    changed = [not torch.equal(a, b) for a, b in decoders]
    assert all(changed), f"{name}: some decoder weights never moved"
    marks = checkpoint["metrics"]["marks"]
    assert [m["step"] for m in marks] == [0, 100, 200, 300]
    start = first_metrics["marks"][-1]  # lesson 05's final measurement is the fine-tuning's step 0
    assert (marks[0]["ratio_notes"], marks[0]["ratio_loops"]) == pytest.approx(
        (start["ratio_notes"], start["ratio_loops"]), abs=2e-4)
    assert (checkpoint["metrics"]["discriminator_parameters"] == 0) == (name == "decoder_ft_spectral")


@pytest.mark.parametrize("name", ["vq_waveform", "vq_waveform_norestart"])
def test_vq_checkpoints_reproduce_their_recorded_codebook_use_on_the_test_loops(name):
    model, checkpoint = load_pretrained(name, build_vq_audio)
    loops = waveform_clips()["test_loops"]
    with torch.no_grad():
        codes = torch.cat([model.eval().encode(chunk) for chunk in loops.split(16)])
    recorded = checkpoint["metrics"]
    assert int(codes.unique().numel()) == recorded["codes_used_loops"]
    assert perplexity(codes, model.config.codes) == pytest.approx(recorded["perplexity_loops"], abs=0.01)


def test_latent_diffusion_reproduces_its_recorded_held_out_loss(lesson05):
    model, checkpoint = load_pretrained("latent_diffusion", build_denoiser)
    test = loop_trajectories(lesson05[0], TEST_LOOPS, seed=1)["mu"]
    with torch.no_grad():
        loss = diffusion_loss(model.eval(), model.standardise(test), torch.Generator().manual_seed(DIFF_SEED + 2))
    assert float(loss["loss"]) == pytest.approx(checkpoint["metrics"]["valid_loss"], abs=1e-4)
