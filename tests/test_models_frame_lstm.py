"""coursekit.models.frame_lstm: the spectrogram-continuing LSTM of lesson 08 (windows cut right, shapes,
continuation feeding its own predictions back, clear errors, and that it learns a known sequence)."""

from __future__ import annotations

import pytest
import torch

from coursekit.models.frame_lstm import FrameLSTMConfig, build_frame_lstm, frame_lstm_loss, frame_windows

TINY = FrameLSTMConfig(n_freq=6, window=3, hidden=8, layers=1, dropout=0.0)


def test_frame_windows_pair_each_window_with_the_frame_after_it():
    features = torch.arange(2 * 4 * 7, dtype=torch.float32).view(2, 1, 4, 7)
    windows, targets = frame_windows(features, window=3, frames=6)
    assert windows.shape == (2 * 3, 3, 4) and targets.shape == (6, 4)
    assert torch.equal(windows[4], features[1, 0, :, 1:4].T)  # note 1, second window: frames 1 to 3
    assert torch.equal(targets[4], features[1, 0, :, 4])  # and frame 4 after it
    with pytest.raises(ValueError, match="frames=3 must exceed window=3"):
        frame_windows(features, window=3, frames=3)


def test_shapes_and_the_loss():
    torch.manual_seed(0)
    model = build_frame_lstm().eval()  # eval: no dropout, so two calls agree
    window, target = torch.rand(5, 16, 256), torch.rand(5, 256)
    predicted = model(window)
    assert predicted.shape == (5, 256)
    parts = frame_lstm_loss(model, {"window": window, "next": target})
    torch.testing.assert_close(parts["loss"], ((predicted - target) ** 2).mean())
    parts["loss"].backward()
    assert model.lstm.weight_ih_l0.grad.abs().sum() > 0


def test_continuation_appends_frames_predicted_from_the_last_window_its_own_included():
    torch.manual_seed(0)
    model = build_frame_lstm(TINY).eval()
    seed = torch.rand(2, 1, 6, 4)
    out = model.continue_frames(seed, 3)
    assert out.shape == (2, 1, 6, 7) and torch.equal(out[..., :4], seed)
    frames = out[:, 0].transpose(1, 2)
    with torch.no_grad():
        torch.testing.assert_close(frames[:, 4], model(frames[:, 1:4]))
        torch.testing.assert_close(frames[:, 6], model(frames[:, 3:6]))  # from two of its own frames


def test_bad_input_is_refused_with_the_fix():
    model = build_frame_lstm(TINY)
    with pytest.raises(ValueError, match=r"window must be \[batch, 3, 6\]"):
        model(torch.rand(2, 6, 3))
    with pytest.raises(ValueError, match="needs at least window=3"):
        model.continue_frames(torch.rand(1, 1, 6, 2), 4)
    with pytest.raises(ValueError, match=r"dropout=1.5 must be in \[0, 1\)"):
        FrameLSTMConfig(dropout=1.5)


def test_it_learns_to_continue_a_rising_ramp():
    # every sequence is a bright bin that climbs one bin per frame: the next frame is the window's last, shifted
    seq = torch.zeros(6, 1, 6, 9)
    for start in range(6):
        for t in range(9):
            seq[start, 0, (start + t) % 6, t] = 1.0
    windows, targets = frame_windows(seq, window=3)
    torch.manual_seed(0)
    model = build_frame_lstm(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(300):
        optimizer.zero_grad()
        frame_lstm_loss(model, {"window": windows, "next": targets})["loss"].backward()
        optimizer.step()
    out = model.continue_frames(seq[:1, :, :, :3], 6)
    assert out[0, 0].argmax(dim=0).tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]
