"""Embedded default data: synthetic yeast-like promoters with planted motifs of known effect.

Each read mimics a DREAM construct: 17-nt left adapter, a random region (80 nt for
most reads, 70-90 nt for some) with A/T-rich composition, 13-nt right adapter.
Motifs are planted at random positions; the noise-free activity is an explicit
function of motif counts, motif position, GC content and one motif interaction
(:func:`true_activity`). Expression = clip(8 + 1.8 * activity + noise, 0, 17);
half of the reads are "singletons" (a single noisier observation rounded to an
integer, like the challenge's integer values), the rest are averages (less noise,
non-integer). Everything is drawn from one seeded numpy generator, vectorised.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from src.datamodules.encoding import encode_str
from src.datamodules.plasmid import LEFT_ADAPTER, RIGHT_ADAPTER
from src.datamodules.readers import Records

# motif -> (effect per occurrence, planting probability); names for documentation
MOTIFS: dict[str, tuple[str, float, float]] = {
    "TATA box": ("TATAAA", 1.2, 0.35),
    "Reb1": ("TTACCCG", 1.6, 0.30),
    "E-box (Cbf1/Pho4)": ("CACGTG", 1.0, 0.30),
    "GATA": ("GATAAG", 0.7, 0.30),
    "Mig1-like repressor": ("GCGGGG", -1.5, 0.30),
    "poly-T": ("TTTTTT", 0.5, 0.25),
}
INTERACTION = ("CACGTG", "GATAAG", 0.8)  # E-box and GATA together add this
RANDOM_LEN = 80
BASE_PROBS = np.array([0.31, 0.19, 0.19, 0.31])  # A, C, G, T (yeast-like A/T richness)
LETTERS = np.frombuffer(b"ACGT", dtype=np.uint8)


def _count(codes: np.ndarray, motif: str) -> np.ndarray:
    """Occurrences of ``motif`` (forward strand) in each row of a code matrix."""
    m = encode_str(motif)
    windows = sliding_window_view(codes, len(m), axis=1)  # (N, L-k+1, k)
    return (windows == m).all(axis=2).sum(axis=1)


def _first_position(codes: np.ndarray, motif: str) -> np.ndarray:
    """Relative position (0 = 5' end, 1 = 3' end) of the first occurrence, NaN if absent."""
    m = encode_str(motif)
    hits = (sliding_window_view(codes, len(m), axis=1) == m).all(axis=2)
    pos = np.where(hits.any(axis=1), hits.argmax(axis=1), -1).astype(float)
    pos[pos < 0] = np.nan
    return pos / max(codes.shape[1] - len(m), 1)


def true_activity(random_codes: np.ndarray) -> np.ndarray:
    """Noise-free activity of random regions given as a ``(N, L)`` code matrix (PAD-free)."""
    activity = np.zeros(len(random_codes))
    for motif, effect, _ in MOTIFS.values():
        # saturating: at most two occurrences count
        activity += effect * np.minimum(_count(random_codes, motif), 2)
    # a TATA box closer to the 3' end (the transcription start) works better
    tata = _first_position(random_codes, MOTIFS["TATA box"][0])
    activity += np.nan_to_num(0.8 * (tata - 0.5))
    a, b, bonus = INTERACTION
    activity += bonus * ((_count(random_codes, a) > 0) & (_count(random_codes, b) > 0))
    gc = np.isin(random_codes, (1, 2)).mean(axis=1)
    activity -= 4.0 * (gc - 0.38)
    return activity


def generate(
    n: int = 10000,
    seed: int = 0,
    variable_fraction: float = 0.1,
    noise_sd: float = 0.9,
    singleton_fraction: float = 0.5,
) -> Records:
    """Draw ``n`` synthetic promoters with expression in [0, 17]."""
    if n < 10:
        raise ValueError(f"data.n must be at least 10 (got {n})")
    rng = np.random.default_rng(seed)
    codes = rng.choice(4, size=(n, RANDOM_LEN), p=BASE_PROBS).astype(np.uint8)
    for motif, _, prob in MOTIFS.values():
        m = encode_str(motif)
        rows = np.flatnonzero(rng.random(n) < prob)
        starts = rng.integers(0, RANDOM_LEN - len(m) + 1, size=rows.size)
        # write the motif into each chosen row at its start (vectorised fancy indexing)
        codes[rows[:, None], starts[:, None] + np.arange(len(m))] = m
    # some reads are shorter or longer than 80 nt, as in the challenge data
    lengths = np.full(n, RANDOM_LEN)
    varied = rng.random(n) < variable_fraction
    lengths[varied] = rng.integers(70, 91, size=int(varied.sum()))
    extra = rng.choice(4, size=(n, 10), p=BASE_PROBS).astype(np.uint8)
    full = np.concatenate([codes, extra], axis=1)
    activity = np.empty(n)
    for length in np.unique(lengths):
        rows = lengths == length
        activity[rows] = true_activity(full[rows, :length])
    singleton = rng.random(n) < singleton_fraction
    noise = rng.normal(0.0, noise_sd, n) * np.where(singleton, 1.5, 1.0)
    expression = np.clip(8.0 + 1.8 * activity + noise, 0.0, 17.0)
    expression[singleton] = np.round(expression[singleton])
    # nudge averaged values off integers so that "integer" means "singleton"
    averaged = ~singleton & (expression == np.round(expression))
    expression[averaged] += np.where(expression[averaged] >= 17.0, -1e-3, 1e-3)
    sequences = [LEFT_ADAPTER + LETTERS[full[i, : lengths[i]]].tobytes().decode() + RIGHT_ADAPTER for i in range(n)]
    return Records(
        sequences=sequences,
        targets=expression.astype(np.float32)[:, None],
        lines=np.arange(1, n + 1, dtype=np.int64),
        path=f"<synthetic n={n} seed={seed}>",
    )
