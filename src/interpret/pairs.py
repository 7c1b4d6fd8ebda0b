"""Paired effects: the predicted ``alt - ref`` difference of sequence pairs (numpy only).

The one home of a pair's effect: ``variant_effect.py`` and the DREAM test suite's paired subsets
(SNVs, motif perturbation, motif tiling) both score ``pair_differences`` of the same predictions.
"""

from __future__ import annotations

import numpy as np


def pair_differences(predictions: np.ndarray, alt: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``predictions[alt] - predictions[ref]`` for index arrays ``alt`` and ``ref`` (rows of ``predictions``)."""
    predictions = np.asarray(predictions)
    return predictions[np.asarray(alt, dtype=np.int64)] - predictions[np.asarray(ref, dtype=np.int64)]
