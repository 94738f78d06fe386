"""What a5_evaluating_generators' grading must show (read by tests/test_assignments.py)."""

NAME = "a5_evaluating_generators"
TESTS = {"test_frechet_distance": 3, "test_pitch_class_entropy": 2, "test_pitch_class_kl": 3, "test_ranking": 2}
ANSWERS = {"assumptions_answer": 2, "ears_answer": 2, "bias_answer": 2}
REFERENCES = {  # scipy, and coursekit's own implementation
    "test_frechet_distance": ("scipy.linalg.sqrtm(", "evaluation.frechet_distance("),
    "test_pitch_class_entropy": ('evaluation.pitch_statistics(midi)["class_entropy_bits"]',),
    "test_pitch_class_kl": ("scipy.stats.entropy(", "evaluation.histogram_kl("),
    "test_ranking": ("evaluation.frechet_distance(", "evaluation.histogram_kl(", "assert ranking == by_frechet"),
}
SIZES = [r'^SIZE = config\.pick\(full="mini", fast="tiny"\)', r"^N_PITCH = config\.pick\(full=(\d+), fast=(\d+)\)",
         r"^BIAS_SIZES = config\.pick\(full=\(.*\), fast=\(.*\)\)"]
INTRO_ROWS = 5
# The ranking cell calls all three functions, so a broken function costs the ranking's points too.
BROKEN = {
    "frechet_raises": ("frechet_distance",
                       ("    x, y = np.asarray(",
                        '    raise ValueError("a bug in frechet_distance")\n    x, y = np.asarray('),
                       {"test_frechet_distance", "test_ranking"}),
    "entropy_syntax_error": ("pitch_class_entropy",
                             ("def pitch_class_entropy(midi):", "def pitch_class_entropy(midi)"),
                             {"test_pitch_class_entropy", "test_ranking"}),
    "kl_backwards": ("pitch_class_kl",  # KL(generated || reference): a plausible slip that the visible test names
                     ("p, q = shares(reference_midi), shares(generated_midi)",
                      "p, q = shares(generated_midi), shares(reference_midi)"),
                     {"test_pitch_class_kl", "test_ranking"}),
    "ranking_reversed": ("ranking",  # right numbers, the worse generator first: only the hidden check sees it
                         ('results[name]["frechet"])', 'results[name]["frechet"], reverse=True)'), {"test_ranking"}),
}
