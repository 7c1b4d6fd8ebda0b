"""NAD processing: the one-hot window of the read that the team's 5-mers cover."""

from __future__ import annotations

import numpy as np

from src.datamodules.processing.onehot import OneHotProcessing
from src.errors import ConfigError


class WindowOneHotProcessing(OneHotProcessing):
    """One-hot A/C/G/T of read positions ``start .. start + seq_len - 1`` (0-based, from the 5' end).

    NAD's 80 words are the 5-mers centred on positions 17..96 of a 110-nt read (the
    random region after the 17-nt adapter), i.e. the 84 nt from position 15: ``start``
    15, ``seq_len`` 84. A read that ends inside the window is zero-padded after its
    3' end (those 5-mers become <unk>); one that extends past the window is cut there
    with ``on_long=trim``, an error with ``error`` and left out with ``drop`` (the team
    kept only 110-nt reads without N, so its reads always filled the window exactly).
    """

    name = "nad"

    def __init__(
        self,
        seq_len: int = 84,
        start: int = 15,
        n_value: float = 0.25,
        rc_average: bool = False,
        on_long: str = "error",
        on_short: str = "error",
        trim: bool | None = None,
    ) -> None:
        if start < 0:
            raise ConfigError(f"processing.start={start} must be >= 0")
        super().__init__(seq_len, n_value=n_value, rc_average=rc_average, on_long=on_long, on_short=on_short, trim=trim)
        self.start = int(start)

    def length_range(self) -> tuple[int, int]:
        return 1, self.start + self.seq_len

    def long_problem(self, length: int) -> str:
        return f"sequence of {length} nt extends past read position {self.start + self.seq_len - 1} the window ends at"

    def prepare(self, codes: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        # the window starts `start` letters into every read; shorter reads leave an empty window (all padding)
        return super().prepare(codes[:, self.start :], np.clip(lengths - self.start, 0, None))

    def describe(self) -> str:
        last = self.start + self.seq_len - 1
        return f"{self.name}: {self.channels} x {self.seq_len} (read positions {self.start}-{last})"
