"""What a4_pianoroll_vae's grading must show (read by tests/test_assignments.py).

Measured on the shared 2-core CPU (load average about 13 from other jobs), one torch thread: the FAST
solution takes 27 s of cell time (42 s under nbval with the kernel start, of which the imports take 16 s);
at full size 94 s of cell time, the slowest cells the transfer test (18 s) and the frequency baseline (17 s).
"""

NAME = "a4_pianoroll_vae"
TESTS = {"test_pos_weight_of": 1, "test_weighted_bce": 2, "test_cell_f1": 2, "test_note_f1": 2, "test_scores": 2,
         "test_style_direction": 1, "test_transfer": 2}
ANSWERS = {"f1_answer": 2, "confound_answer": 3}
REFERENCES = {  # coursekit's own implementations (and torch's BCE), and the direct computation of note starts
    "test_pos_weight_of": ("losses.positive_weight(",),
    "test_weighted_bce": ("losses.weighted_bce(", "F.binary_cross_entropy_with_logits("),
    "test_cell_f1": ("metrics.f1_scores(**metrics.f1_counts(",),
    "test_note_f1": ("metrics.note_onsets(", "metrics.onset_f1(", "starts_by_loop("),
    "test_scores": ("model.reconstruct(test_rolls, threshold)", 'baseline["f1"]', "metrics.onset_f1("),
    "test_style_direction": ("reference_style.style_direction(",),
    "test_transfer": ("reference_style.style_transfer(", "assert abs(flipped - reference_flip) < 0.01"),
}
SIZES = [r"^MAX_PIECES = config\.pick\(full=None, fast=20\)", r"^TRAIN_EVERY = config\.pick\(full=\d+, fast=\d+\)"]
INTRO_ROWS = 6
# The scores of part 4 use cell_f1 and note_f1; the transfer test uses the student's style direction.
BROKEN = {
    "bce_raises": ("weighted_bce",
                   ("    cells = -(pos_weight",
                    '    raise ValueError("a bug in weighted_bce")\n    cells = -(pos_weight'),
                   {"test_weighted_bce"}),
    # a plausible slip: no guard for an empty prediction (ZeroDivisionError), which note_f1 inherits
    "f1_divides_by_zero": ("cell_f1",
                           ("    precision = tp / (tp + fp) if tp + fp else 0.0", "    precision = tp / (tp + fp)"),
                           {"test_cell_f1", "test_note_f1"}),
    "note_f1_syntax_error": ("note_f1", ("def note_f1(predicted, target):", "def note_f1(predicted, target)"),
                             {"test_note_f1", "test_scores"}),
    # folk windows moved forwards too (further into folk): the classifier's decision flips for the chorales only
    "transfer_one_way": ("style_transfer",
                         ("    sign = 1.0 - 2.0 * styles.float()", "    sign = torch.ones(len(styles))"),
                         {"test_transfer"}),
}
