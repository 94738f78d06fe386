"""What a2_audio_representations's grading must show (read by tests/test_assignments.py).

Measured run times of the solution, one torch thread, on the 2-core machine shared with other jobs
(load average 11 to 14, so wall times are inflated; the FAST run used about 15 s of CPU): FAST 34 s
of cell time under `jupyter nbconvert --execute` (setup cell 16 s, most of it imports; training the
VAE core 9 s), 39 s under nbval, 41 s in the sandboxed grader (setup 17 s, training 12 s); full size
90 s (loading the 1,140 + 220 notes' features 23 s, pre-encoding and training 28 s).
"""

NAME = "a2_audio_representations"
TESTS = {"test_stft_magnitude": 2, "test_spectral_distance": 2, "test_mu_law": 3, "test_amplitude_to_db": 2,
         "test_griffin_lim": 3, "test_pre_encode_notes": 2, "test_core_loss": 2, "test_trained_core": 2}
ANSWERS = {"floor_mu_answer": 2, "magnitude_answer": 2}
REFERENCES = {
    "test_stft_magnitude": ("audio.stft(x, n_fft, hop).abs()",),
    "test_spectral_distance": ("audio.spectral_distance(x, y, n_fft, hop, eps)",),
    "test_mu_law": ("audio.mu_law_encode(x, mu, quantize)", "audio.mu_law_decode(c, mu)"),
    "test_amplitude_to_db": ("audio.amplitude_to_db(m, floor_db, ref)",),
    "test_griffin_lim": ("audio.griffin_lim(", "momentum=0.0", "metrics.spectral_convergence("),
    "test_pre_encode_notes": ("pre_encode(ae.eval().encode",),
    "test_core_loss": ("code_vae_loss(model_h, data, beta=beta)",),
}
SIZES = [r'^SIZE = config\.pick\(full="mini", fast="tiny"\)', r"^EPOCHS = config\.pick\(full=\d+, fast=\d+\)",
         r"^BATCH_SIZE = config\.pick\(full=\d+, fast=\d+\)"]
INTRO_ROWS = 6
BROKEN = {
    "distance_raises": ("spectral_distance",
                        ("    log_x = torch.log(",
                         '    raise RuntimeError("a bug in spectral_distance")\n    log_x = torch.log('),
                        {"test_spectral_distance"}),
    "mu_law_syntax_error": ("mu_law", ("def mu_law_decode(y, mu=255):", "def mu_law_decode(y, mu=255)"),
                            {"test_mu_law"}),
    "griffin_lim_raises": ("griffin_lim",
                           ("    for _ in range(n_iter):\n", '    raise ValueError("a bug in griffin_lim")\n'
                            "    for _ in range(n_iter):\n"),
                           {"test_griffin_lim"}),
    # the training cell calls the loss too, so the trained-core test fails with it
    "core_loss_raises": ("core_loss",
                         ('    code = batch["code"]\n', '    raise KeyError("codes")\n    code = batch["code"]\n'),
                         {"test_core_loss", "test_trained_core"}),
}
