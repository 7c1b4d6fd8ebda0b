"""The model as a function of the user's read: a 4-channel one-hot in, the run's processing inside forward.

Every processing adds what a user never wrote (vector or plasmid flanks, N or zero padding, strand,
singleton and orientation flags, the reverse complement of Unlock_DNA's second half). Each of them
places every read base in at most a few columns of its encoding and fills the rest with constants,
so for a read of a given length (and given id flags) the encoding is an affine map of the read's
one-hot: column ``s`` of ``x`` is ``const[:, s] + weight[s] @ onehot[:, source[s]]``. The map is
read off the processing itself (:func:`probe_layout`: the processing's own ``prepare`` and
``make_batch`` in evaluation mode on a few probe reads), never re-implemented, and checked against
the processing's encoding of every read before use. Applying it is a gather and a small einsum,
so gradients reach the read's bases at the read's own positions, and positions that the processing
crops away get none.

In the read one-hot an N is an all-zero column (the convention of tangermeme and captum's zero
baseline); the map turns it into the processing's own N encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from src.datamodules.encoding import N, encode_array
from src.inference import prepare_sequences, resolve_device, resolve_rc_average
from src.lit_modules.prixfixe_module import PrixFixeModule
from src.precision import inference_autocast, inference_dtype

PROBE_BASES = 4  # A, C, G, T probes; N is the reference probe


@dataclass(frozen=True)
class Layout:
    """Where a read of one length lands in the processing's encoding ``(C, S)``.

    ``source[s]``: the read position column ``s`` shows (-1: none); ``weight[s]`` ``(C, 4)``: the
    encoding of each base there minus that of N; ``const`` ``(C, S)``: the encoding of an all-N read.
    """

    source: np.ndarray  # int64 (S,)
    weight: np.ndarray  # float32 (S, C, 4)
    const: np.ndarray  # float32 (C, S)

    @property
    def seen(self) -> np.ndarray:
        """Read positions the model sees (sorted, unique)."""
        return np.unique(self.source[self.source >= 0])


def encode_processing(module: PrixFixeModule, prepared: dict[str, np.ndarray]) -> Tensor:
    """The processing's evaluation-mode encoding ``(B, C, S)`` of prepared reads (forward strand)."""
    fields = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in prepared.items()}
    n = len(next(iter(fields.values())))
    n_targets = int(module.hparams.get("n_targets", 1))
    batch = module.processing.make_batch(
        fields, torch.zeros(n, n_targets), torch.zeros(n, dtype=torch.long), False, None
    )
    return batch["x"].float()


def probe_layout(module: PrixFixeModule, length: int, id_values: dict[str, np.ndarray]) -> Layout:
    """The affine map of a read of ``length`` nt with per-read id fields ``id_values``.

    Probes: an all-N read (the constant part), one all-A/C/G/T read each (what a base adds), and one
    read per position holding A in an N background (which columns that position reaches).
    """
    processing = module.processing
    n_probe = 1 + PROBE_BASES + length
    codes = np.full((n_probe, length), N, dtype=np.uint8)
    for base in range(PROBE_BASES):
        codes[1 + base] = base
    codes[1 + PROBE_BASES + np.arange(length), np.arange(length)] = 0  # A at position j of probe j
    prepared = processing.prepare(codes, np.full(n_probe, length, dtype=np.int64))
    prepared.update({k: np.repeat(v[:1], n_probe, axis=0) for k, v in id_values.items()})
    x = encode_processing(module, prepared).numpy()
    const = x[0]
    weight = np.moveaxis(x[1 : 1 + PROBE_BASES] - const, 0, -1)  # (C, S, 4)
    reached = np.abs(x[1 + PROBE_BASES :] - const).sum(axis=1) > 0  # (length, S)
    if (reached.sum(axis=0) > 1).any():
        raise ValueError(f"processing {processing.name}: a column of its encoding depends on several read positions")
    source = np.where(reached.any(axis=0), reached.argmax(axis=0), -1).astype(np.int64)
    return Layout(source=source, weight=np.ascontiguousarray(weight.transpose(1, 0, 2)), const=const)


def reads_one_hot(codes: np.ndarray, lengths: np.ndarray) -> Tensor:
    """``(N, 4, Lmax)`` float one-hot of code rows; N and positions past a read's end are zero columns."""
    width = codes.shape[1]
    onehot = np.zeros((len(codes), 4, width), dtype=np.float32)
    rows, cols = np.nonzero(codes < 4)
    onehot[rows, codes[rows, cols], cols] = 1.0
    assert (np.arange(width)[None, :] < lengths[:, None])[rows, cols].all()
    return torch.from_numpy(onehot)


class ReadModel(nn.Module):
    """``forward(X, layout)``: predictions ``(B, T)`` for read one-hots ``X`` ``(B, 4, W)``.

    ``layout`` ``(B,)`` (any dtype; floats from tangermeme's ``args`` are rounded) picks each row's
    :class:`Layout` among :attr:`layouts`; columns of ``X`` past what a layout reads are ignored.
    Strand averaging follows ``rc_average`` (None: the processing's default), autocast ``precision``.
    """

    def __init__(
        self,
        module: PrixFixeModule,
        layouts: list[Layout],
        rc_average: bool | None = None,
        precision: str = "32",
        device: str | torch.device | None = "cpu",
    ) -> None:
        super().__init__()
        self.module = module
        self.device_ = resolve_device(device) or torch.device("cpu")
        self.average = resolve_rc_average(module.processing, rc_average)
        self.dtype = inference_dtype(precision, self.device_)
        self.layouts = layouts
        self.register_buffer("source", torch.from_numpy(np.stack([lay.source for lay in layouts])), persistent=False)
        self.register_buffer("weight", torch.from_numpy(np.stack([lay.weight for lay in layouts])), persistent=False)
        self.register_buffer("const", torch.from_numpy(np.stack([lay.const for lay in layouts])), persistent=False)
        self.to(self.device_)
        self.eval()

    def encode(self, X: Tensor, layout: Tensor | None = None) -> Tensor:
        """The processing's encoding ``(B, C, S)`` of read one-hots (differentiable in ``X``)."""
        b = X.shape[0]
        which = torch.zeros(b, dtype=torch.long, device=X.device) if layout is None else layout.round().long()
        source = self.source[which]  # (B, S)
        gathered = X.float().gather(2, source.clamp_min(0)[:, None, :].expand(b, X.shape[1], -1))  # (B, 4, S)
        gathered = gathered * (source >= 0)[:, None, :]
        return self.const[which] + torch.einsum("bscj,bjs->bcs", self.weight[which], gathered)

    def forward(self, X: Tensor, layout: Tensor | None = None) -> Tensor:
        x = self.encode(X, layout)
        with inference_autocast(self.dtype, self.device_):
            return self.module.predict_expression(x, rc_average=self.average).float()


@dataclass
class PreparedReads:
    """Reads as the wrapper takes them: one-hot, layout index per read, and the processing's own encoding."""

    sequences: list[str]
    onehot: Tensor  # (N, 4, Lmax)
    lengths: np.ndarray  # int64 (N,)
    layout: Tensor  # int64 (N,)
    layouts: list[Layout]
    seen: np.ndarray  # bool (N, Lmax): positions the model sees
    path: str | None = None  # where the reads came from (error messages)
    lines: np.ndarray | None = None  # 1-based line of each read in ``path``

    def where(self, row: int) -> tuple[str, int]:
        """File and line of read ``row`` for a :class:`DataError`."""
        return self.path or "<sequences>", int(self.lines[row]) if self.lines is not None else row + 1


def prepare_reads(
    module: PrixFixeModule,
    sequences: Sequence[str],
    path: str | Path | None = None,
    lines: np.ndarray | None = None,
    ids: list[str] | None = None,
    orientation: str | None = None,
    chunk: int = 4096,
) -> PreparedReads:
    """Validate reads (bad letters, lengths: :func:`prepare_sequences`' one-line errors), find their layouts.

    ``ids`` / ``orientation``: the orientation flag as :func:`src.inference.prepare_sequences` sets it.
    Layouts are probed once per distinct (length, per-read flags) and each read's mapped encoding is
    checked against the processing's own encoding of that read.
    """
    sequences = list(sequences)
    prepared = prepare_sequences(module.processing, sequences, path, lines, ids, orientation)
    codes, lengths = encode_array(sequences)
    # the fields prepare() derives from the letters; the rest are per-read flags (from ids or orientation)
    letter_fields = module.processing.prepare(codes[:1, : int(lengths[0])], lengths[:1])
    id_fields = {k: v for k, v in prepared.items() if k not in letter_fields}
    keys = [(int(lengths[i]), *(int(v[i]) for v in id_fields.values())) for i in range(len(sequences))]
    index: dict[tuple[int, ...], int] = {}
    layouts: list[Layout] = []
    which = np.empty(len(sequences), dtype=np.int64)
    for row, key in enumerate(keys):
        if key not in index:
            index[key] = len(layouts)
            layouts.append(probe_layout(module, key[0], {k: v[row : row + 1] for k, v in id_fields.items()}))
        which[row] = index[key]
    onehot = reads_one_hot(codes, lengths)
    wrapper = ReadModel(module, layouts, rc_average=False, device="cpu")
    for start in range(0, len(sequences), chunk):
        stop = min(start + chunk, len(sequences))
        expected = encode_processing(module, {k: v[start:stop] for k, v in prepared.items()})
        mapped = wrapper.encode(onehot[start:stop], torch.from_numpy(which[start:stop]))
        if not torch.allclose(mapped, expected, atol=1e-6):
            bad = start + int((mapped - expected).abs().flatten(1).amax(1).argmax())
            raise AssertionError(f"read {bad}: the probed layout differs from processing {module.processing.name}")
    seen = np.zeros(onehot.shape[::2], dtype=bool)
    for k, lay in enumerate(layouts):
        rows = np.flatnonzero(which == k)
        seen[np.ix_(rows, lay.seen)] = True
    source = None if path is None else str(path)
    return PreparedReads(sequences, onehot, lengths, torch.from_numpy(which), layouts, seen, source, lines)
