"""Motif effects by marginalisation: a motif substituted into background reads, mean predicted change and spread.

A motif is an IUPAC string (``TATAWAWR``; ``N`` keeps the background base) or the name of a motif the
synthetic generator plants (:data:`src.datamodules.synthetic.MOTIFS`: ``TATA``, ``Reb1``, ``E-box``, ``GATA``,
``Mig1``, ``poly-T``; case and punctuation ignored). A degenerate motif is every concrete sequence it
stands for (at most :data:`MAX_VARIANTS`), each marginalised and averaged. Each motif goes in forward
and as its reverse complement, at the chosen start positions (default: centred), through tangermeme's
``marginalize`` on the :class:`ReadModel`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np
import torch

from src.datamodules.synthetic import MOTIFS
from src.errors import ConfigError
from src.interpret.read_model import PreparedReads, ReadModel

IUPAC = {
    "A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
    "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "N",
}  # fmt: skip
COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVN", "TGCAYRSWMKVHDBN")
MAX_VARIANTS = 64


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def motif_names() -> dict[str, str]:
    """Accepted spellings of the planted motifs' names -> their sequence."""
    names: dict[str, str] = {}
    for name, (seq, _, _) in MOTIFS.items():
        for spelling in (name, name.split("(")[0], name.split()[0], name.split("-")[0]):
            names.setdefault(_key(spelling), seq)
    return names


def resolve_motif(text: str) -> str:
    """The IUPAC sequence of a motif name or IUPAC string; anything else -> ConfigError naming ``motif``."""
    text = str(text).strip()
    named = motif_names().get(_key(text))
    if named is not None:  # a name wins over the same letters as IUPAC ("GATA" is the planted GATAAG)
        return named
    if text and set(text.upper()) <= set(IUPAC):
        return text.upper()
    choices = ", ".join(sorted(MOTIFS))
    raise ConfigError(f"motif: {text!r} is neither an IUPAC string (ACGT RYSWKMBDHV N) nor a planted motif ({choices})")


def reverse_complement(motif: str) -> str:
    return motif.translate(COMPLEMENT)[::-1]


def concrete_variants(motif: str) -> list[str]:
    """Every concrete sequence of an IUPAC motif (``N`` stays ``N``: keep the background)."""
    choices = [IUPAC[c] for c in motif]
    count = int(np.prod([len(c) for c in choices]))
    if count > MAX_VARIANTS:
        raise ConfigError(f"motif: {motif!r} stands for {count} sequences (at most {MAX_VARIANTS}; use N for any base)")
    return ["".join(p) for p in itertools.product(*choices)]


@dataclass
class MotifEffect:
    """Predicted change ``after - before`` of one motif, strand and start, over the backgrounds."""

    motif: str
    sequence: str
    strand: str
    start: int
    effects: np.ndarray  # (n_backgrounds,)

    def row(self) -> str:
        e = self.effects
        sd = float(e.std(ddof=1)) if e.size > 1 else float("nan")
        return f"{self.motif}\t{self.sequence}\t{self.strand}\t{self.start}\t{e.size}\t{e.mean():.6g}\t{sd:.6g}"


HEADER = "motif\tsequence\tstrand\tstart\tn\tmean\tsd"


def marginalize_motif(
    model: ReadModel,
    backgrounds: PreparedReads,
    motif: str,
    starts: list[int] | None = None,
    target: int = 0,
    batch_size: int = 512,
) -> list[MotifEffect]:
    """Effects of ``motif`` (name or IUPAC) at each start (None: centred) on both strands."""
    from tangermeme.marginalize import marginalize

    sequence = resolve_motif(motif)
    shortest = int(backgrounds.lengths.min())
    if len(sequence) > shortest:
        raise ConfigError(f"motif: {sequence} ({len(sequence)} nt) is longer than the shortest background ({shortest})")
    starts = [(shortest - len(sequence)) // 2] if not starts else [int(s) for s in starts]
    for start in starts:
        if not 0 <= start <= shortest - len(sequence):
            raise ConfigError(f"positions: start {start} does not fit {sequence} in {shortest}-nt backgrounds")
    out = []
    for strand, oriented in (("+", sequence), ("-", reverse_complement(sequence))):
        for start in starts:
            effects = []
            for variant in concrete_variants(oriented):
                result = marginalize(
                    model,
                    backgrounds.onehot,
                    variant,
                    start=start,
                    args=(backgrounds.layout.float(),),
                    batch_size=batch_size,
                    device=model.device_,
                    dtype=torch.float32,
                )
                effects.append((result.y_after - result.y_before)[:, target].float().numpy())
            out.append(MotifEffect(str(motif), oriented, strand, start, np.mean(effects, axis=0)))
    return out


def random_backgrounds(n: int, length: int, seed: int) -> list[str]:
    """``n`` uniform random ACGT reads of ``length`` nt (seeded)."""
    if n < 2 or length < 1:
        raise ConfigError(f"backgrounds={n}: give at least 2 backgrounds of at least 1 nt (background_length)")
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    return [letters[row].tobytes().decode() for row in rng.integers(0, 4, size=(n, length))]
