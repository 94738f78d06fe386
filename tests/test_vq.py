"""coursekit.models.vq: lesson 09's vector-quantised bottleneck (perplexity's known values, nearest codes,
straight-through and stop-gradients, dead-code restarts, the autoencoder's shapes, round trips and loss)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from coursekit.audio.spectral import multi_resolution_spectral_convergence, multi_resolution_spectral_distance
from coursekit.models.audio_vae import AudioVAEConfig
from coursekit.models.vq import VectorQuantizer, VQAudioConfig, VQLoss, build_vq_audio, perplexity

SMALL_AUDIO = AudioVAEConfig(strides=(2, 4), channels=(8, 16), latent_channels=4, dilations=(1,))  # 8x compression


@pytest.mark.parametrize(
    ("codes", "n_codes", "expected"),
    [
        ([3, 3, 3, 3, 3], 8, 1.0),  # one code: entropy 0
        ([0, 1, 2, 3], 4, 4.0),  # uniform over 4
        ([[0, 1], [2, 3]], 512, 4.0),  # unused codes and the shape do not matter
        ([0, 0, 1, 2], 4, 2**1.5),  # p = (1/2, 1/4, 1/4): entropy 1.5 bits
        ([0] * 9 + [1], 2, math.exp(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)))),
    ],
)
def test_perplexity_known_values(codes, n_codes, expected):
    assert perplexity(torch.tensor(codes), n_codes) == pytest.approx(expected, rel=1e-12)


def test_perplexity_of_nothing_is_refused():
    with pytest.raises(ValueError, match="codes is empty: perplexity needs at least one chosen code."):
        perplexity(torch.zeros(0, dtype=torch.long), 4)


def quantizer(codes: int = 16, dim: int = 4, **kwargs) -> VectorQuantizer:
    torch.manual_seed(0)
    vq = VectorQuantizer(codes, dim, **kwargs)
    with torch.no_grad():
        vq.codebook.normal_()  # codes spread like the frames below, so many different ones are chosen
    return vq


def test_nearest_is_the_brute_force_nearest_code():
    vq = quantizer()
    z = torch.randn((3, 4, 50), generator=torch.Generator().manual_seed(1))
    frames = z.transpose(1, 2).reshape(-1, 4)
    expected = torch.cdist(frames, vq.codebook.detach()).argmin(1).view(3, 50)
    found = vq.nearest(z)
    assert torch.equal(found, expected)
    assert found.unique().numel() > 8  # a real choice among the codes, not one code everywhere


def test_quantized_frames_hold_the_chosen_codes_values():
    vq = quantizer(restart_below=None)
    z = torch.randn((2, 4, 30), generator=torch.Generator().manual_seed(2))
    parts = vq(z)
    assert parts["codes"].shape == (2, 30) and parts["quantized"].shape == z.shape
    for b in range(2):
        for f in range(30):
            torch.testing.assert_close(
                parts["quantized"][b, :, f], vq.codebook[parts["codes"][b, f]], rtol=0, atol=1e-6
            )
    chosen = vq.codebook.detach()[parts["codes"]].transpose(1, 2)
    assert float(parts["codebook"].detach()) == pytest.approx(float(((chosen - z) ** 2).mean()), rel=1e-6)
    # the commitment has the codebook loss's value; they differ in where their gradients go
    assert float(parts["commitment"].detach()) == pytest.approx(float(parts["codebook"].detach()), rel=1e-6)
    assert parts["perplexity"] == pytest.approx(perplexity(parts["codes"], 16))


def test_straight_through_copies_the_gradient_onto_z():
    vq = quantizer(restart_below=None)
    z = torch.randn((2, 4, 10), generator=torch.Generator().manual_seed(3), requires_grad=True)
    w = torch.randn((2, 4, 10), generator=torch.Generator().manual_seed(4))
    (vq(z)["quantized"] * w).sum().backward()
    torch.testing.assert_close(z.grad, w, rtol=0, atol=0)
    assert vq.codebook.grad is None  # the codes learn only from the codebook loss


@pytest.mark.parametrize(
    ("term", "moves_codebook", "moves_z"), [("codebook", True, False), ("commitment", False, True)]
)
def test_each_vq_loss_moves_only_its_own_side(term, moves_codebook, moves_z):
    vq = quantizer(restart_below=None)
    z = torch.randn((2, 4, 10), generator=torch.Generator().manual_seed(5), requires_grad=True)
    vq(z)[term].backward()
    assert (vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0) == moves_codebook
    assert (z.grad is not None and z.grad.abs().sum() > 0) == moves_z


def collapsed_batches(n: int, vq: VectorQuantizer) -> list[torch.Tensor]:
    """Batches of frames all near code 0 (the other codes far away): only code 0 is ever chosen."""
    with torch.no_grad():
        vq.codebook.fill_(-10.0)
        vq.codebook[0] = 10.0
    generator = torch.Generator().manual_seed(6)
    return [10.0 + torch.randn((2, 4, 5), generator=generator) for _ in range(n)]


def test_dead_codes_are_restarted_onto_frames_of_the_batch():
    """Usage starts at 1 and decays by 0.9 a call for an unused code: below 0.1 after 22 calls (0.9^21 = 0.109)."""
    vq = quantizer(codes=8, restart_below=0.1, decay=0.9)
    batches = collapsed_batches(22, vq)
    before = vq.codebook.detach().clone()
    for z in batches[:21]:
        assert torch.all(vq(z)["codes"] == 0)
    assert torch.equal(vq.codebook.detach(), before) and vq.restarts == 0
    torch.testing.assert_close(vq.usage[1:], torch.full((7,), 0.9**21))
    vq(batches[21])
    assert vq.restarts == 7
    assert torch.equal(vq.codebook[0].detach(), before[0])  # the code in use stays
    frames = batches[21].transpose(1, 2).reshape(-1, 4)  # the restarting batch's 10 frames
    for row in vq.codebook[1:].detach():
        assert torch.any(torch.all(frames == row, dim=1)), "a restarted code is not one of the batch's frames"
    torch.testing.assert_close(vq.usage[1:], torch.ones(7))  # restarted codes get a fresh start


def test_without_restarts_or_in_eval_mode_no_code_moves():
    for vq, mode in ((quantizer(codes=8, restart_below=None), "train"), (quantizer(codes=8), "eval")):
        batches = collapsed_batches(30, vq)
        vq.train(mode == "train")
        before, usage = vq.codebook.detach().clone(), vq.usage.clone()
        for z in batches:
            vq(z)
        assert torch.equal(vq.codebook.detach(), before) and vq.restarts == 0
        assert torch.equal(vq.usage, usage)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codes": 0, "dim": 4}, r"codes=0 must be a whole number >= 1\."),
        ({"codes": 8, "dim": 2.0}, r"dim=2\.0 must be a whole number >= 1\."),
        ({"codes": 8, "dim": 4, "restart_below": 0}, r"restart_below=0: a positive count per batch, or None"),
    ],
)
def test_quantizer_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VectorQuantizer(**kwargs)


def test_frames_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match=r"z has shape \[2, 3, 10\]; expected \[batch, 4, frames\]\."):
        quantizer().nearest(torch.zeros(2, 3, 10))


def test_the_default_autoencoder_codes_a_second_as_125_codes_and_decodes_them_back():
    torch.manual_seed(0)
    model = build_vq_audio().eval()
    x = 0.1 * torch.randn(2, 1, 16000)
    with torch.no_grad():  # codes on the encoder's frames of other audio, so that many different codes are chosen
        other = model.network.encode(0.1 * torch.randn(2, 1, 16000))[0]
        model.quantizer.codebook[:250] = other.transpose(1, 2).reshape(250, 16)
        x_hat, parts = model(x)
        codes = model.encode(x)
        again = model.decode_codes(codes)
    assert x_hat.shape == x.shape and codes.shape == (2, 125) and codes.dtype == torch.int64
    assert torch.equal(codes, parts["codes"]) and codes.unique().numel() > 20
    torch.testing.assert_close(again, x_hat, rtol=0, atol=1e-6)
    assert model.bits_per_second == 9 * 125  # log2(512) bits a frame, 125 frames a second
    assert model.quantizer.codebook.shape == (512, 16)


def test_bits_per_second_follows_codes_and_compression():
    model = build_vq_audio({"audio": SMALL_AUDIO, "codes": 16})
    assert model.bits_per_second == 4 * 16000 / 8


def test_config_round_trips_through_a_checkpoint_dict():
    for config in (VQAudioConfig(), VQAudioConfig(audio=SMALL_AUDIO, codes=64, commitment=0.5, restart_below=None)):
        stored = json.loads(json.dumps(config.to_dict()))
        assert VQAudioConfig.from_dict(stored) == config
    assert VQAudioConfig(audio=SMALL_AUDIO.to_dict()).audio == SMALL_AUDIO


def test_config_and_code_errors():
    with pytest.raises(ValueError, match=r"commitment=-0\.1 must be a number >= 0, e\.g\. 0\.25\."):
        VQAudioConfig(commitment=-0.1)
    model = build_vq_audio({"audio": SMALL_AUDIO, "codes": 16})
    message = r"codes has shape \[2, 5\] and dtype torch\.float32; expected integer \[batch, frames\]\."
    with pytest.raises(ValueError, match=message):
        model.decode_codes(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"codes has shape \[10\] and dtype torch\.int64"):
        model.decode_codes(torch.zeros(10, dtype=torch.long))


@pytest.mark.parametrize("commitment", [0.25, 0.5])
def test_vq_loss_adds_reconstruction_codebook_and_weighted_commitment(commitment):
    torch.manual_seed(0)
    model = build_vq_audio({"audio": SMALL_AUDIO, "codes": 16, "commitment": commitment}).eval()
    x = 0.1 * torch.randn(2, 1, 4096)  # lesson 05's spectral losses use windows up to 2048
    parts = VQLoss()(model, {"audio": x})
    assert set(parts) == {"loss", "recon", "codebook", "commitment", "perplexity"}
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in parts.values())
    x_hat, _ = model(x)
    recon = multi_resolution_spectral_distance(x_hat, x) + multi_resolution_spectral_convergence(x_hat, x)
    torch.testing.assert_close(parts["recon"], recon)
    expected = parts["recon"] + parts["codebook"] + commitment * parts["commitment"]
    torch.testing.assert_close(parts["loss"], expected)
    assert float(parts["codebook"].detach()) > 0 and 1 <= float(parts["perplexity"]) <= 16
    torch.testing.assert_close(VQLoss()(model, x)["loss"], parts["loss"])  # a bare tensor batch works too
