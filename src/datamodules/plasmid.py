"""The DREAM plasmid: the read adapters and the vector sequence around the N80 insert.

The flanks are the 200 nt on each side of the N80 site of the challenge plasmid
(``plasmid.json``); ``tests/test_data.py`` checks them against that file when
the shared data is present. They are embedded so that team processing works on a
fresh machine with no data files.
"""

from __future__ import annotations

import json
from pathlib import Path

LEFT_ADAPTER = "TGCATTTTTTTCACATC"  # 17 nt, 5' end of every read
RIGHT_ADAPTER = "GGTTACGGCTGTT"  # 13 nt, 3' end of every read

# 200 nt immediately 5' of the N80 site; ends with the left adapter
UPSTREAM = (
    "CAAAAGAATAGACCGAGATAGGGTTGAGTGTTGTTCCAGTTTGGAACAAGAGTCCACTATTAAAGAACGTGGACTCCAAC"
    "GTCAAAGGGCGAAAAACCGTCTATCAGGGCGATGGCCCACTACGTGAACCATCACCCTAATCAAGTGCTAGCAGGAATGA"
    "TGCAAAAGGTTCCCGATTCGAACTGCATTTTTTTCACATC"
)
# 200 nt immediately 3' of the N80 site; starts with the right adapter
DOWNSTREAM = (
    "GGTTACGGCTGTTTCTTAATTAAAAAAAGATAGAAAACATTAGGAGTGTAACACAAGACTTTCGGATCCTGAGCAGGCAA"
    "GATAAACGAAGGCAAAGATGTCTAAAGGTGAAGAATTATTCACTGGTGTTGTCCCAATTTTGGTTGAATTAGATGGTGAT"
    "GTTAATGGTCACAAATTTTCTGTCTCCGGTGAAGGTGAAG"
)
# vector 5' of a read (the read itself starts with the left adapter)
VECTOR_5P = UPSTREAM[: -len(LEFT_ADAPTER)]
# vector 3' of a read (the read itself ends with the right adapter)
VECTOR_3P = DOWNSTREAM[len(RIGHT_ADAPTER) :]


def flanks_from_plasmid(path: str | Path, width: int = 200) -> tuple[str, str]:
    """(upstream, downstream) ``width``-nt flanks of the N-run in a plasmid JSON file."""
    seq = json.loads(Path(path).read_text())
    if not isinstance(seq, str) or "N" not in seq:
        raise ValueError(f"{path}: expected a JSON string holding the plasmid with an N insert site")
    start, end = seq.find("N"), seq.rfind("N")
    return seq[start - width : start].upper(), seq[end + 1 : end + 1 + width].upper()
