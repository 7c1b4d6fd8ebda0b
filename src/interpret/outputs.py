"""What interpret.py writes: the scores ``.npz``, a top-positions table and logo PNGs, into one folder at once.

The folder is built next to ``output`` under a temporary name and renamed into place when complete,
so a failed run leaves ``output`` as it was (absent, or the previous complete result).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from src.interpret.attribution import Scores

SCORES_NPZ = "scores.npz"
TOP_TSV = "top_positions.tsv"
BASES = "ACGT"


@contextlib.contextmanager
def staged_folder(output: str | Path) -> Iterator[Path]:
    """A fresh temporary folder beside ``output``; on success it replaces ``output``, on failure it is removed."""
    output = Path(output)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        old = None
        if output.exists():
            old = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.old")
            output.rename(old)
        tmp.rename(output)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_scores(folder: Path, scores: Scores, sequences: list[str], lengths: np.ndarray, method: str) -> Path:
    """``scores.npz``: ``observed`` and ``hypothetical`` ``(N, 4, L)`` (A, C, G, T rows), ``sequences``,
    ``lengths``, ``predictions`` ``(N, T)`` and ``method``."""
    path = folder / SCORES_NPZ
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        observed=scores.observed.astype(np.float32),
        hypothetical=scores.hypothetical.astype(np.float32),
        sequences=np.asarray(sequences),
        lengths=np.asarray(lengths, dtype=np.int64),
        predictions=scores.predictions.astype(np.float32),
        method=np.asarray(method),
    )
    path.write_bytes(buffer.getvalue())
    return path


def top_positions(scores: Scores, sequences: list[str], n_top: int) -> str:
    """TSV of the ``n_top`` positions with the largest |observed score| per read (0-based positions)."""
    lines = ["read\tposition\tbase\tscore\tbest_substitution\tbest_substitution_score"]
    per_position = scores.observed.sum(axis=1)  # (N, L): the observed base's score
    for row, seq in enumerate(sequences):
        order = np.argsort(-np.abs(per_position[row]), kind="stable")[: int(n_top)]
        for pos in order:
            if per_position[row, pos] == 0:
                continue
            hyp = scores.hypothetical[row, :, pos]
            own = BASES.find(seq[pos].upper())
            alt = [b for b in range(4) if b != own]
            best = max(alt, key=lambda b: abs(hyp[b]))
            lines.append(f"{row}\t{pos}\t{seq[pos]}\t{per_position[row, pos]:.6g}\t{BASES[best]}\t{hyp[best]:.6g}")
    return "\n".join(lines) + "\n"


def plot_logos(folder: Path, scores: Scores, sequences: list[str], lengths: np.ndarray, n_logos: int) -> list[Path]:
    """``logo_<i>.png`` for the first ``n_logos`` reads: observed-base logo above the hypothetical one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tangermeme.plot import plot_logo

    paths = []
    for row in range(min(int(n_logos), len(sequences))):
        length = int(lengths[row])
        fig, axes = plt.subplots(2, 1, figsize=(max(6.0, length / 8), 4.2), sharex=True)
        for ax, values, title in (
            (axes[0], scores.observed[row, :, :length], "observed base"),
            (axes[1], scores.hypothetical[row, :, :length], "hypothetical (every base)"),
        ):
            plot_logo(values, ax=ax)
            ax.set_ylabel("score")
            ax.set_title(f"read {row}: {title}", fontsize=9, loc="left")
        axes[1].set_xlabel("read position (0-based)")
        fig.tight_layout()
        path = folder / f"logo_{row}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths
