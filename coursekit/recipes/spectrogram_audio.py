"""Lesson 04's audio evaluation and its controlled comparison of magnitude scales.

:func:`judge_reconstructions` listens with numbers: for notes of each family it compares the
autoencoder's reconstruction, decoded to audio, with the raw original, beside the Griffin-Lim
ceiling (the original's own features inverted the same way) and an unrelated note. The three
recipes ``spec_ae_mu8``, ``spec_ae_mu255`` and ``spec_ae_db`` train the same autoencoder, from the
same seed, for the same :data:`SCALE_EPOCHS` epochs, changing only how magnitudes are squeezed
into [0, 1]: mu-law with mu = 8 (source 003), mu-law with mu = 255, or decibels above the floor.
Two more recipes change the code instead, 128 numbers in place of 64 (the bottleneck test):
``spec_ae_mu8_code128`` at the scale runs' 12 epochs, ``spec_ae_nsynth_code128`` at the shipped
autoencoder's 40. Measured on one CPU thread: about 14 s an epoch, so
each run takes about 3 minutes.

Lesson: lessons/04_spectrogram_vae.ipynb
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from coursekit import audio
from coursekit.data.nsynth import FAMILIES, NSynthMini
from coursekit.evaluation import MIDI_OF_10_HZ
from coursekit.features import SpectrogramFeatures
from coursekit.metrics import CREPE_SR, crepe_cents, referee_distance
from coursekit.models.spectrogram import SpectrogramAE, SpectrogramAEConfig
from coursekit.recipes.registry import register_recipe
from coursekit.recipes.spectrogram_vae import SPEC_AE_EPOCHS, train_spectrogram_ae

SCALE_EPOCHS = 12  # the budget of each run of the comparison: 12 epochs, cosine-annealed, no early stop
SCALES = {  # recipe name -> the only setting that differs
    "spec_ae_mu8": SpectrogramFeatures(),
    "spec_ae_mu255": SpectrogramFeatures(mu=255.0),
    "spec_ae_db": SpectrogramFeatures(scale="db"),
}
BOTTLENECK = {  # recipe name -> (the run it copies, code size): twice the code (9 MB), at both budgets
    "spec_ae_mu8_code128": ("spec_ae_mu8", 128),  # 12 epochs, as the scale runs
    "spec_ae_nsynth_code128": ("spec_ae_nsynth", 128),  # 40 epochs and patience 5, as the shipped autoencoder
}
HIGH_HZ = 4000.0  # the band whose share of the energy measures hiss
JUDGE_FLOOR_DB = -70.0  # the shared noise floor the judge adds before comparing, dB re full scale (RMS)


def pick_notes(notes: NSynthMini, per_family: int = 1) -> list[int]:
    """Indices of ``per_family`` notes of each family of ``notes``, family by family, each of a different key.

    Takes the family's notes in key order and picks evenly spaced ones from the middle, so that
    the lowest and highest keys (where the STFT resolves least) do not dominate.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if per_family < 1:
        raise ValueError(f"per_family={per_family}: take at least 1 note of each family.")
    chosen = []
    for family in FAMILIES:
        members = [i for i, e in enumerate(notes.examples) if e["instrument_family_str"] == family]
        by_key = {int(notes.examples[i]["pitch"]): i for i in sorted(members, reverse=True)}  # one note per key
        keys = sorted(by_key)
        spread = [(2 * k + 1) * len(keys) // (2 * per_family) for k in range(min(per_family, len(keys)))]
        chosen += [by_key[keys[j]] for j in spread]
    return chosen


def notes_by_key_band(notes: NSynthMini, edges: list[int], per_band: int) -> dict[str, list[int]]:
    """Up to ``per_band`` indices of ``notes`` from each key band, spread evenly over the band's notes in
    key order from its lowest key to its highest (unlike :func:`pick_notes`, the extremes are included).

    Args:
        edges: increasing MIDI keys; band j holds keys ``edges[j] <= key < edges[j + 1]``.

    Returns:
        ``{"lo-hi": [index, ...]}`` (the band's keys, inclusive), bands without notes left out.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if per_band < 1 or len(edges) < 2 or list(edges) != sorted(set(edges)):
        raise ValueError(f"edges={edges}, per_band={per_band}: give at least two increasing keys and per_band >= 1.")
    by_key = sorted(range(len(notes.examples)), key=lambda i: (int(notes.examples[i]["pitch"]), i))
    bands = {}
    for lo, hi in itertools.pairwise(edges):
        members = [i for i in by_key if lo <= int(notes.examples[i]["pitch"]) < hi]
        if members:
            take = min(per_band, len(members))
            bands[f"{lo}-{hi - 1}"] = [members[round(j * (len(members) - 1) / max(take - 1, 1))] for j in range(take)]
    return bands


def nearest_key_notes(notes: NSynthMini, indices: list[int]) -> list[int]:
    """For each index, the note of the same instrument whose key is nearest to it but not the same
    (the lower key on a tie): a stricter landmark than an unrelated note, since it shares the timbre.

    Raises:
        ValueError: an instrument of ``indices`` has no note at another key in ``notes`` (the message names it).

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    keys = [int(e["pitch"]) for e in notes.examples]
    nearest = []
    for i in indices:
        instrument = notes.examples[i]["instrument_str"]
        others = [j for j, e in enumerate(notes.examples) if e["instrument_str"] == instrument and keys[j] != keys[i]]
        if not others:
            raise ValueError(f"{instrument} has no note at a key other than {keys[i]} here: no neighbour to compare.")
        nearest.append(min(others, key=lambda j: (abs(keys[j] - keys[i]), keys[j], j)))
    return nearest


def reference_clips(notes: NSynthMini, indices: list[int], n_samples: int) -> torch.Tensor:
    """The notes at ``indices`` as lesson 04 judges them: each cut or padded to ``n_samples`` samples and
    peak-normalised to 1, Tensor ``[n, 1, n_samples]``.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    return audio.peak_normalize(audio.trim_or_pad(torch.stack([notes[i]["audio"] for i in indices]), n_samples))


def note_clips(ae: SpectrogramAE, notes: NSynthMini, indices: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    """The clips lesson 04 compares, each Tensor ``[n, 1, samples]`` at ``notes.sr``, matched by index.

    ``reference``: each note's first 2 s, peak-normalised (what the features start from);
    ``ceiling``: its own features decoded by Griffin-Lim (the best any model of these features
    can do); ``recon``: through the autoencoder ``ae``, decoded the same way; ``other``: the
    reference of the next note in ``indices`` (of another family when :func:`pick_notes` chose
    them), an unrelated sound.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if len(indices) < 2:
        raise ValueError(f"{len(indices)} notes: take at least 2 (the unrelated note comes from the list).")
    features = ae.config.features
    raw = torch.stack([notes[i]["audio"] for i in indices])
    reference = reference_clips(notes, indices, features.n_samples)
    return {"reference": reference, "ceiling": features.decode(features.encode(raw), seed=seed),
            "recon": reconstruct(ae, raw, seed), "other": torch.roll(reference, 1, dims=0)}  # fmt: skip


@torch.no_grad()
def reconstruct(ae: SpectrogramAE, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Notes ``x`` [n, 1, samples] through the autoencoder and back to audio (Griffin-Lim): [n, 1, 32000].

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    features = ae.config.features
    return features.decode(ae.eval()(features.encode(x)), seed=seed)


def add_floor(x: torch.Tensor, floor_db: float = JUDGE_FLOOR_DB, seed: int = 0) -> torch.Tensor:
    """Clips ``x`` [n, 1, samples] plus one faint white noise, the same for every clip, of RMS ``floor_db``
    dB re full scale.

    A log-magnitude distance weighs a bin 100 dB down as much as a loud one, so two clips that
    differ only far below hearing (a float signal and its 16-bit copy) score apart. Adding the
    same noise to both sides makes every bin below the floor equal on both, so the distance
    ignores what lies beneath it and still sees everything above it.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if floor_db >= 0:
        raise ValueError(f"floor_db={floor_db}: a noise floor lies below full scale; give a negative dB value.")
    noise = torch.randn(x.shape[-1], generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    return x + noise * 10 ** (floor_db / 20)


def high_band_db(x: torch.Tensor, sr: int, above_hz: float = HIGH_HZ, n_fft: int = 1024) -> torch.Tensor:
    """Share of each clip's energy above ``above_hz``, in dB (0 dB: all of it; -30 dB: a thousandth).

    Args:
        x: Tensor ``[n, 1, samples]`` at ``sr`` Hz.

    Returns:
        Tensor ``[n]``; silence reads -100 dB.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if not 0 < above_hz < sr / 2:
        raise ValueError(f"above_hz={above_hz} must lie between 0 and the Nyquist frequency {sr / 2} Hz.")
    power = audio.stft(x, n_fft).abs().pow(2).sum(dim=-1)  # [n, 1, bins]
    high = power[..., round(above_hz * n_fft / sr) :].sum(dim=-1)
    share = high / power.sum(dim=-1).clamp(min=1e-20)
    return (10 * torch.log10(share.clamp(min=1e-10))).reshape(len(x))


def loud_descriptors(x: torch.Tensor, sr: int, within_db: float = 40.0, n_fft: int = 1024) -> dict[str, torch.Tensor]:
    """Mean spectral centroid (Hz) and flatness (0 a pure tone, 1 white noise) of each clip of ``x``
    [n, 1, samples], over its frames within ``within_db`` dB of its loudest, so silence does not count.

    Returns:
        ``{"centroid": Tensor [n], "flatness": Tensor [n]}``.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    mag = audio.stft(x, n_fft).abs().reshape(len(x), n_fft // 2 + 1, -1) + 1e-10  # [n, bins, frames]
    level = 10 * torch.log10(mag.pow(2).sum(dim=1))  # [n, frames]
    loud = level >= level.max(dim=1, keepdim=True).values - within_db
    hz = torch.linspace(0, sr / 2, n_fft // 2 + 1)[None, :, None]
    centroid = (hz * mag).sum(dim=1) / mag.sum(dim=1)
    flatness = mag.pow(2).log().mean(dim=1).exp() / mag.pow(2).mean(dim=1)
    return {name: (value * loud).sum(dim=1) / loud.sum(dim=1) for name, value in
            (("centroid", centroid), ("flatness", flatness))}  # fmt: skip


def crepe_pitch(
    x: torch.Tensor, start: float = 0.25, seconds: float = 0.5, threshold: float = 0.5
) -> dict[str, torch.Tensor]:
    """CREPE on ``seconds`` of each clip of ``x`` [n, 1, samples] at 16 kHz from ``start`` s (the held
    part of a note, after its attack).

    Returns:
        ``{"midi": Tensor [n]`` (median over voiced frames, fractional MIDI, nan when no frame is
        voiced), ``"periodicity": Tensor [n]`` (CREPE's mean confidence: near 1 for a steady pitched
        tone, near 0 for noise)}.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    midi, periodicity = [], []
    for clip in x[..., round(start * CREPE_SR) : round((start + seconds) * CREPE_SR)]:
        cents, confidence = crepe_cents(clip)
        voiced = confidence > threshold
        midi.append(cents[voiced].median() / 100 + MIDI_OF_10_HZ if voiced.any() else torch.tensor(float("nan")))
        periodicity.append(confidence.mean())
    return {"midi": torch.stack(midi).float(), "periodicity": torch.stack(periodicity)}


@torch.no_grad()
def judge_clips(
    clips: dict[str, torch.Tensor],
    keys: list[int],
    sr: int,
    tolerance: float = 50.0,
    distance_only: tuple = ("other",),
    floor_db: float | None = JUDGE_FLOOR_DB,
) -> dict[str, dict]:
    """Measure every kind of clip against ``clips["reference"]`` (all Tensor ``[n, 1, samples]``, matched).

    Args:
        clips: ``{kind: Tensor [n, 1, samples]}`` with a ``"reference"``, as :func:`note_clips` makes.
        keys: the n MIDI keys the notes were played at.
        tolerance: cents within which a pitch counts as the key (originals) or as kept (the others).
        distance_only: kinds measured by ``"mrstft"`` alone (the unrelated notes: their pitch is known).
        floor_db: the noise floor :func:`add_floor` puts under both clips before the distance
            (None: none; the distance then reacts to differences far below hearing).

    Returns:
        ``{kind: {"mrstft": [n]`` (:func:`coursekit.metrics.referee_distance`, auraloss's
        multi-resolution STFT distance to the reference over the shared floor; 0 for the reference), ``"midi"``,
        ``"periodicity"`` (:func:`crepe_pitch`), ``"kept": [n]`` (1 if the pitch lies within
        ``tolerance`` of the reference's, nan where the reference is not heard at its key),
        ``"high_db"`` (:func:`high_band_db`), ``"centroid"``, ``"flatness"`` (:func:`loud_descriptors`)}}``.

    Lesson: lessons/04_spectrogram_vae.ipynb
    """
    if "reference" not in clips or any(c.shape != clips["reference"].shape for c in clips.values()):
        raise ValueError(f"clips {list(clips)} need a 'reference' and one shape [n, 1, samples] for all kinds.")
    if len(keys) != len(clips["reference"]):
        raise ValueError(f"{len(keys)} keys for {len(clips['reference'])} clips: give one MIDI key per clip.")
    referee, reference = referee_distance(), clips["reference"]
    floored = (lambda x: x) if floor_db is None else (lambda x: add_floor(x, floor_db))  # noqa: E731
    heard_reference = floored(reference)

    def measure(x: torch.Tensor, distance_only: bool = False) -> dict[str, torch.Tensor]:
        over_floor = floored(x)
        distances = [referee(over_floor[i : i + 1], heard_reference[i : i + 1]) for i in range(len(x))]
        row = {"mrstft": torch.stack(distances)}
        if distance_only:
            return row
        return row | crepe_pitch(x) | loud_descriptors(x, sr) | {"high_db": high_band_db(x, sr)}

    original = measure(reference)
    heard = (original["midi"] - torch.tensor(keys, dtype=torch.float32)).abs() * 100 <= tolerance
    result = {}
    for kind, x in clips.items():
        if kind in distance_only:
            result[kind] = {"mrstft": measure(x, distance_only=True)["mrstft"]}
            continue
        row = original if kind == "reference" else measure(x)
        kept = ((row["midi"] - original["midi"]).abs() * 100 <= tolerance).float()
        result[kind] = row | {"kept": torch.where(heard, kept, float("nan"))}
    return result


def _scale_recipe(name: str, features: SpectrogramFeatures, code_dim: int = 64):
    def train(path: Path, ship: bool) -> None:
        ae_config = SpectrogramAEConfig(code_dim=code_dim, features=features)
        _, metrics = train_spectrogram_ae(ae_config, epochs=SCALE_EPOCHS, checkpoint_path=path, patience=None,
                                          live_plot=False, progress=False)  # fmt: skip
        print(f"{name}: feature MSE valid {metrics['valid_mse']:.5f}, spectral distance "
              f"{metrics['spectral_distance_ae']:.3f} (ceiling {metrics['spectral_distance_griffin_lim']:.3f}), "
              f"{metrics['train_time_s']} s")  # fmt: skip

    return train


for _name, _features in SCALES.items():
    _what = "mu-law, mu 8" if _features.scale == "mu_law" and _features.mu == 8 else (
        f"mu-law, mu {_features.mu:g}" if _features.scale == "mu_law" else "dB above the -70 dB floor")
    register_recipe(_name, f"spectrogram autoencoder on {_what} features, {SCALE_EPOCHS} epochs: lesson 04's "
                    "comparison of magnitude scales")(_scale_recipe(_name, _features))  # fmt: skip


def _full_budget_recipe(name: str, code_dim: int):
    def train(path: Path, ship: bool) -> None:
        _, metrics = train_spectrogram_ae(SpectrogramAEConfig(code_dim=code_dim), checkpoint_path=path,
                                          live_plot=False, progress=False)  # fmt: skip
        print(f"{name}: feature MSE valid {metrics['valid_mse']:.5f}, {metrics['epochs_run']} epochs, "
              f"{metrics['train_time_s']} s")

    return train


for _name, (_base, _code_dim) in BOTTLENECK.items():
    _train = _scale_recipe(_name, SpectrogramFeatures(), _code_dim) if _base == "spec_ae_mu8" else \
        _full_budget_recipe(_name, _code_dim)
    _epochs = SCALE_EPOCHS if _base == "spec_ae_mu8" else SPEC_AE_EPOCHS
    register_recipe(_name, f"{_base} with a code of {_code_dim} numbers instead of 64, {_epochs} epochs: lesson 04's "
                    "bottleneck test")(_train)  # fmt: skip
