"""SYSU-SAIL-2022 (DREAM 2022 rank 6): a 3-layer BERT over 3-mer tokens in three reading frames.

The first block derives the tokens itself from the one-hot input (A, C, G, T in the
first four channels), so it follows any processing. Each of the three
non-overlapping reading frames (offsets 0, 1, 2) becomes one token sequence
``[CLS] k-mers [SEP] [PAD]...`` of ``T = 2 + seq_len // 3`` tokens; the three
sequences are laid end to end along the length axis (``segment_lengths = (T, T, T)``)
instead of the original's folding into the batch, so the batch axis stays the batch.
The core folds them into the batch itself (each frame attends only to itself, as in
the original), and the final block reads each frame's [CLS] and averages the three
predictions.

Own graph on ``processing=sysu`` (``(B, 4, 442)``: 150 + 142 + 150 nt of vector
context): first ``(B, 512, 447)`` (3 x 149 tokens) -> core ``(B, 512, 447)`` -> final
``(B, 1, 1)``; 330,752 + 9,457,152 + 263,169 = 10,051,073 parameters, as
``BertForSequenceClassification`` with 130 tokens and 512 positions.

Masked-token prediction (the team's BERT pretraining task) is an optional auxiliary
loss ``"mlm"`` of the final block (``mlm=true``), active when the batch carries a
base-level ``mask`` (``processing.mask_ratio > 0``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from src.blocks.base import Batch, Block, FinalBlock, base_codes

PAD_ID, CLS_ID, UNK_ID, SEP_ID, MASK_ID = range(5)
N_SPECIAL = 5
N_BASE = 5  # A, C, G, T, N (codes 0-4 of base_codes)
LN_EPS = 1e-12  # BERT's LayerNorm epsilon
INIT_STD = 0.02  # BERT's initializer_range


@torch.no_grad()
def bert_init(module: nn.Module) -> None:
    """BERT init: Linear and Embedding weights ~ N(0, 0.02), zero biases, LayerNorm 1 / 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Embedding):
            m.weight.normal_(0.0, INIT_STD)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()


# --------------------------------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------------------------------


def frame_length(seq_len: int, k: int = 3) -> int:
    """Tokens per frame: [CLS] + the k-mers of frame 0 + [SEP]."""
    return 2 + seq_len // k


def kmer_frames(codes: Tensor, k: int = 3, frames: int = 3) -> Tensor:
    """``(B, L)`` base codes -> ``(B, frames, 2 + L // k)`` token ids.

    Frame ``f`` holds the non-overlapping k-mers starting at ``f, f + k, ...``; a k-mer
    ``b_1 .. b_k`` has id ``5 + sum b_i 5^(k - i)`` (so ``AAA`` = 5 and ``NNN`` = 129 for
    k = 3). Each frame is ``[CLS] k-mers [SEP]`` padded with ``[PAD]`` to the length of frame 0.
    """
    b, length = codes.shape
    width = frame_length(length, k)
    out = torch.full((b, frames, width), PAD_ID, dtype=torch.long, device=codes.device)
    weights = N_BASE ** torch.arange(k - 1, -1, -1, device=codes.device)
    for f in range(frames):
        n = (length - f) // k
        windows = codes[:, f : f + n * k].reshape(b, n, k)
        out[:, f, 0] = CLS_ID
        out[:, f, 1 : n + 1] = N_SPECIAL + (windows * weights).sum(-1)
        out[:, f, n + 1] = SEP_ID
    return out


def kmer_mask(mask: Tensor, k: int = 3, frames: int = 3) -> Tensor:
    """``(B, L)`` base mask -> ``(B, frames, 2 + L // k)``: a k-mer is masked when its first base is."""
    b, length = mask.shape
    out = torch.zeros((b, frames, frame_length(length, k)), dtype=torch.bool, device=mask.device)
    for f in range(frames):
        n = (length - f) // k
        out[:, f, 1 : n + 1] = mask[:, f : f + n * k : k]
    return out


# --------------------------------------------------------------------------------------------------
# first block
# --------------------------------------------------------------------------------------------------


class SysuFirst(Block):
    """3-mer tokens of three frames -> word + position + token-type embeddings -> LayerNorm -> Dropout.

    Tokens come from :func:`base_codes` and :func:`kmer_frames`; each frame gets positions
    ``0 .. T - 1`` and token type 0. When the batch carries a base-level ``mask`` (B, L),
    the k-mers whose first base is masked are hidden as in BERT: 80 % become [MASK],
    10 % a random k-mer, 10 % stay. ``segment_lengths = (T,) * frames``.

    Own graph: ``(B, 4, 442)`` -> ``(B, 512, 447)``; 330,752 parameters (word 130 x 512 +
    position 512 x 512 + type 2 x 512 + LayerNorm 1,024), whatever the input length
    up to ``k * (max_positions - 2) + k - 1``.
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        d_model: int = 512,
        k: int = 3,
        frames: int = 3,
        max_positions: int = 512,
        type_vocab: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(in_channels, seq_len)
        if in_channels < 4:
            raise ValueError(f"SysuFirst needs the A/C/G/T one-hot in the first 4 channels, got {in_channels}")
        self.k, self.frames = int(k), int(frames)
        width = frame_length(seq_len, self.k)
        if seq_len < self.k + self.frames - 1 or width > max_positions:
            raise ValueError(
                f"SysuFirst: seq_len={seq_len} gives {width} tokens per frame; needs >= {self.k + self.frames - 1} nt "
                f"and at most max_positions={max_positions} tokens"
            )
        self.out_channels = int(d_model)
        self.segment_lengths = (width,) * self.frames
        self.vocab = N_SPECIAL + N_BASE**self.k  # 130 for 3-mers
        self.word = nn.Embedding(self.vocab, d_model)
        self.position = nn.Embedding(max_positions, d_model)
        self.token_type = nn.Embedding(type_vocab, d_model)
        self.norm = nn.LayerNorm(d_model, eps=LN_EPS)
        self.dropout = nn.Dropout(dropout)
        bert_init(self)
        with torch.no_grad():
            self.word.weight[PAD_ID].zero_()  # BERT zeroes the padding row at init

    def tokens(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        """``(B, frames, T)`` token ids, with BERT masking when the batch carries ``mask``."""
        ids = kmer_frames(base_codes(x), self.k, self.frames)
        mask = None if batch is None else batch.get("mask")
        if mask is None or mask.shape != x.shape[::2]:
            return ids
        hidden = kmer_mask(mask.bool(), self.k, self.frames)
        draw = torch.rand(ids.shape, device=ids.device)
        random_ids = torch.randint(N_SPECIAL, self.vocab, ids.shape, device=ids.device)
        ids = torch.where(hidden & (draw < 0.8), torch.full_like(ids, MASK_ID), ids)  # 80 %: [MASK]
        return torch.where(hidden & (draw >= 0.8) & (draw < 0.9), random_ids, ids)  # 10 %: random, 10 %: kept

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        ids = self.tokens(x, batch)  # (B, frames, T)
        positions = torch.arange(ids.shape[-1], device=ids.device)
        h = self.word(ids) + self.position(positions) + self.token_type.weight[0]  # (B, frames, T, d)
        h = self.dropout(self.norm(h))
        return h.flatten(1, 2).transpose(1, 2)  # frames end to end: (B, d, frames * T)


# --------------------------------------------------------------------------------------------------
# core block
# --------------------------------------------------------------------------------------------------


class BertLayer(nn.Module):
    """Post-LN BERT layer on ``(B, L, d)``: x = LN(x + Drop(MHA(x))); x = LN(x + Drop(W2 GELU(W1 x))).

    Q/K/V/output projections with bias, attention-probability dropout, no attention mask
    (the team passed none); ``4 (d^2 + d) + 2 d ff + ff + d + 4 d`` parameters.
    """

    def __init__(self, d: int, n_heads: int, ff: int, dropout: float) -> None:
        super().__init__()
        if d % n_heads:
            raise ValueError(f"BertLayer: width {d} is not divisible by n_heads={n_heads}")
        self.n_heads = int(n_heads)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm1 = nn.LayerNorm(d, eps=LN_EPS)
        self.ff_in = nn.Linear(d, ff)
        self.ff_out = nn.Linear(ff, d)
        self.norm2 = nn.LayerNorm(d, eps=LN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = float(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        p = self.attn_dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p).transpose(1, 2).reshape(b, length, d)
        x = self.norm1(x + self.dropout(self.out(a)))
        return self.norm2(x + self.dropout(self.ff_out(F.gelu(self.ff_in(x)))))


class SysuCore(Block):
    """``n_layers`` BERT layers; width = ``in_channels``, length unchanged.

    With ``segment_lengths`` from the first block (SYSU's frames), every segment is
    encoded on its own (equal segments are folded into the batch); otherwise the whole
    sequence is one segment. Own graph: ``(B, 512, 447)`` -> ``(B, 512, 447)``;
    9,457,152 parameters (3 x 3,152,384).
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        n_layers: int = 3,
        n_heads: int = 8,
        ff_mult: int = 4,
        dropout: float = 0.1,
        segment_lengths: Sequence[int] | None = None,
    ) -> None:
        super().__init__(in_channels, seq_len)
        self.out_channels = in_channels
        self.segment_lengths = tuple(int(n) for n in segment_lengths) if segment_lengths else (seq_len,)
        if sum(self.segment_lengths) != seq_len:
            raise ValueError(f"SysuCore: segments {self.segment_lengths} do not add up to seq_len={seq_len}")
        self.layers = nn.Sequential(
            *(BertLayer(in_channels, n_heads, ff_mult * in_channels, dropout) for _ in range(n_layers))
        )
        bert_init(self)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        h = x.transpose(1, 2)  # (B, L, d)
        segs = self.segment_lengths
        if len(set(segs)) == 1:  # equal segments: fold them into the batch, (B n, T, d)
            b, _, d = h.shape
            return self.layers(h.reshape(b * len(segs), segs[0], d)).reshape(b, -1, d).transpose(1, 2)
        return torch.cat([self.layers(part) for part in h.split(segs, dim=1)], dim=1).transpose(1, 2)


# --------------------------------------------------------------------------------------------------
# final block
# --------------------------------------------------------------------------------------------------


class SysuFinal(FinalBlock):
    """[CLS] of each segment -> pooler (Linear d -> d, tanh) -> Dropout -> Linear d -> T K -> mean over segments.

    With ``segment_lengths`` the [CLS] is the first position of each segment (SYSU's
    frames); without, the mean over all positions stands in for it. ``mlm=true`` adds
    BERT's masked-token head (Linear d -> d, GELU, LayerNorm, Linear d -> vocab) and
    returns ``{"mlm": mean cross-entropy over the hidden k-mers}`` when the batch carries
    ``mask`` (B, L0) and the segments are the frames of an L0-long input; the true k-mers
    come from the batch's unmasked ``tokens`` codes when present, else from ``x``.

    Own graph: ``(B, 512, 447)`` -> ``(B, 1, 1)``; 263,169 parameters without the MLM
    head (+ 330,370 with it).
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        n_targets: int = 1,
        outputs_per_target: int = 1,
        dropout: float = 0.1,
        mlm: bool = False,
        k: int = 3,
        segment_lengths: Sequence[int] | None = None,
    ) -> None:
        super().__init__(in_channels, seq_len, n_targets, outputs_per_target)
        self.segment_lengths = tuple(int(n) for n in segment_lengths) if segment_lengths else None
        self.k = int(k)
        self.pooler = nn.Linear(in_channels, in_channels)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(in_channels, n_targets * outputs_per_target)
        self.mlm = (
            nn.Sequential(
                nn.Linear(in_channels, in_channels),
                nn.GELU(),
                nn.LayerNorm(in_channels, eps=LN_EPS),
                nn.Linear(in_channels, N_SPECIAL + N_BASE**self.k),
            )
            if mlm
            else None
        )
        bert_init(self)

    def _mlm_loss(self, h: Tensor, batch: Batch) -> Tensor | None:
        """Cross-entropy of the hidden k-mers, or None when the batch or layout does not allow it."""
        mask, x = batch.get("mask"), batch.get("x")
        segs = self.segment_lengths
        if mask is None or x is None or segs is None or mask.dim() != 2:
            return None
        frames = len(segs)
        if set(segs) != {frame_length(mask.shape[1], self.k)} or x.shape[-1] != mask.shape[1]:
            return None
        tokens = batch.get("tokens")
        codes = tokens.long() if tokens is not None and tokens.shape == mask.shape else base_codes(x)
        target = kmer_frames(codes, self.k, frames)  # (B, frames, T)
        hidden = kmer_mask(mask.bool(), self.k, frames)
        if not hidden.any():
            return h.sum() * 0.0  # nothing hidden in this batch: a zero that keeps the graph
        logits = self.mlm(h.view(h.shape[0], frames, segs[0], -1)[hidden]).float()  # (n hidden, vocab)
        return F.cross_entropy(logits, target[hidden])

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        h = x.transpose(1, 2)  # (B, L, d)
        if self.segment_lengths:
            starts = torch.tensor([0, *self.segment_lengths[:-1]], device=h.device).cumsum(0)
            cls = h[:, starts]  # (B, n segments, d): each segment's [CLS]
        else:
            cls = h.mean(dim=1, keepdim=True)
        pooled = self.dropout(torch.tanh(self.pooler(cls)))
        out = self.head(pooled).mean(dim=1)  # one prediction per segment, averaged
        out = out.view(-1, self.n_targets, self.outputs_per_target)
        if self.mlm is None or batch is None:
            return out
        loss = self._mlm_loss(h, batch)
        return out if loss is None else (out, {"mlm": loss})

    def output_layers(self) -> list[nn.Module]:
        return [self.head]  # one prediction per segment, averaged; the MLM head is auxiliary
