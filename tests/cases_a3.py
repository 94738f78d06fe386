"""What a3_hierarchical_vae's grading must show (read by tests/test_assignments.py)."""

NAME = "a3_hierarchical_vae"
TESTS = {"test_multi_resolution_spectral_distance": 3, "test_mmd_imq": 3, "test_encoder": 3,
         "test_posterior_objective_loss": 3, "test_trained_model": 2}
ANSWERS = {"objectives_answer": 2, "referee_answer": 1}
REFERENCES = {
    "test_multi_resolution_spectral_distance": ("reference_audio.multi_resolution_spectral_distance(",),
    "test_mmd_imq": ("losses.mmd_imq(",),
    "test_encoder": ("reference.encode(",),
    "test_posterior_objective_loss": ('latent_vae_loss(model_h, data, "posterior", beta)',),
}
SIZES = [rf"^{size} = config\.pick\(full=\d+, fast=\d+\)" for size in ("N_TRAIN_LOOPS", "N_TEST_LOOPS", "EPOCHS")]
INTRO_ROWS = 6
BROKEN = {
    "mmd_raises": ("mmd_imq",
                   ("    n, d = z.shape\n", '    raise ValueError("a bug in mmd_imq")\n    n, d = z.shape\n'),
                   {"test_mmd_imq"}),
    "encoder_syntax_error": ("encoder", ("    def forward(self, x):", "    def forward(self, x)"), {"test_encoder"}),
    # the training cell calls the loss too, so the trained-model test fails with it
    "loss_raises": ("posterior_objective_loss",
                    ('    mu1, logvar1 = batch["mu"], batch["logvar"]\n',
                     '    raise KeyError("mu1")\n    mu1, logvar1 = batch["mu"], batch["logvar"]\n'),
                    {"test_posterior_objective_loss", "test_trained_model"}),
}
