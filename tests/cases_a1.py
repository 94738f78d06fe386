"""What a1_vae_mnist's grading must show (read by tests/test_assignments.py)."""

NAME = "a1_vae_mnist"
TESTS = {"test_reparameterize": 2, "test_kl_to_standard_normal": 3, "test_elbo": 3, "test_trained_model": 2,
         "test_interpolate": 1}  # autograded test cells and their points
ANSWERS = {"beta_answer": 2}  # written answers, graded by hand
REFERENCES = {  # what each hidden test compares the student's answer with: coursekit's own implementation
    "test_kl_to_standard_normal": ("losses.kl_divergence(",),
}
SIZES = [r"^N_TRAIN = config\.pick\(full=None, fast=\d+\)", r"^EPOCHS = config\.pick\(full=\d+, fast=\d+\)"]
INTRO_ROWS = 6
# Broken submissions: the answer cell, the change (text that occurs once there, its replacement), and the
# test cells that must fail; every other test cell passes.
BROKEN = {
    "syntax_error": ("elbo", ("def elbo(x, logits, mu, logvar, beta=1.0):",
                              "def elbo(x, logits, mu, logvar, beta=1.0)"),
                     {"test_elbo", "test_trained_model"}),
    "infinite_loop": ("reparameterize", ("def reparameterize(mu, logvar, generator=None):",
                                         "while True:\n    pass\n\ndef reparameterize(mu, logvar, generator=None):"),
                      {"test_reparameterize", "test_trained_model"}),
    "raises": ("kl_to_standard_normal", ('    """\n    kl = ', '    """\n    raise ValueError("a bug")\n    kl = '),
               {"test_kl_to_standard_normal", "test_elbo", "test_trained_model"}),
}
