"""NAD (DREAM 2022 rank 5): 5-mer embedding -> ResNet + feature pyramid -> per-level transformers.

The first block derives the 5-mers itself from the one-hot input (A, C, G, T in the
first four channels), one per full window, and looks them up in a **learned**
embedding (1,024 5-mers + <unk> for any window with N) where the team used a fixed
GloVe table trained on the challenge reads (not shipped; nothing downloads at run
time). The core's four pyramid levels are laid end to end along the length axis
(``segment_lengths``); the final block splits them again, runs one transformer per
level and averages the four predictions. Deep supervision (each level's prediction
scored against the label with the final config's own loss) is the optional
auxiliary loss ``"deep"``.

Own graph on ``processing=nad`` (the 84 nt around the random region, so the 80
windows are centred on read positions 17..96): ``(B, 4, 84)`` -> first
``(B, 128, 80)`` -> core ``(B, 256, 150)`` (levels 10 + 20 + 40 + 80) -> final
``(B, 1, 1)``. 378,240 + 3,405,696 + 10,523,980 = 14,307,916 trainable parameters:
the team's 14,176,716 plus the 131,200 of the embedding table, which GloVe kept frozen.
PyTorch default initialisation (as the team).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from src.blocks.base import Batch, Block, FinalBlock, base_codes

# --------------------------------------------------------------------------------------------------
# first block
# --------------------------------------------------------------------------------------------------


def kmer_ids(codes: Tensor, k: int = 5) -> Tensor:
    """``(B, L)`` base codes (A 0 .. T 3, N 4) -> ``(B, L - k + 1)`` ids of the k-mer starting at each position.

    A k-mer ``b_1 .. b_k`` over A, C, G, T has id ``sum b_i 4^(k - i)`` (``AAAAA`` = 0,
    ``TTTTT`` = 1,023 for k = 5); a window holding an N gets the <unk> id ``4^k``.
    """
    windows = codes.unfold(1, k, 1)  # (B, L - k + 1, k)
    weights = 4 ** torch.arange(k - 1, -1, -1, device=codes.device)
    ids = (windows.clamp(max=3) * weights).sum(-1)
    return torch.where((windows == 4).any(-1), torch.full_like(ids, 4**k), ids)


class ResidualBlock(nn.Module):
    """conv3 -> BN -> ELU -> conv3 -> BN -> (+ input) -> ELU; convs k=3, pad 1, no bias. ``(B, c, L)`` kept."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.path = nn.Sequential(
            nn.Conv1d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm1d(c),
            nn.ELU(),
            nn.Conv1d(c, c, 3, padding=1, bias=False),
            nn.BatchNorm1d(c),
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(self.path(x) + x)


class Stage(nn.Sequential):
    """conv3 stride s (no bias) -> BN -> ELU -> 2 x :class:`ResidualBlock`.

    ``(B, cin, L)`` -> ``(B, cout, ceil(L / s))``.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, n_blocks: int = 2) -> None:
        super().__init__(
            nn.Conv1d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm1d(cout),
            nn.ELU(),
            *(ResidualBlock(cout) for _ in range(n_blocks)),
        )


class NadFirst(Block):
    """5-mer ids from the one-hot -> learned embedding (``4^k + 1`` x ``d``) -> Stage d -> d (stride 1).

    One window per full k-mer, so the length shrinks by ``k - 1``. Own graph:
    ``(B, 4, 84)`` -> ``(B, 128, 80)``; 378,240 parameters (embedding 131,200 + stage 247,040).
    """

    def __init__(self, in_channels: int, seq_len: int, d_model: int = 128, k: int = 5) -> None:
        super().__init__(in_channels, seq_len)
        if in_channels < 4 or seq_len < k:
            raise ValueError(
                f"NadFirst needs the A/C/G/T one-hot in the first 4 channels and seq_len >= k={k}, "
                f"got ({in_channels}, {seq_len})"
            )
        self.k = int(k)
        self.out_channels = int(d_model)
        self.embedding = nn.Embedding(4**self.k + 1, d_model)  # the team's GloVe table, learned here
        self.stage = Stage(d_model, d_model, stride=1)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        ids = kmer_ids(base_codes(x), self.k)  # (B, L - k + 1)
        return self.stage(self.embedding(ids).transpose(1, 2))  # (B, d, L - k + 1)


# --------------------------------------------------------------------------------------------------
# core block
# --------------------------------------------------------------------------------------------------


class NadCore(Block):
    """ResNet stages c2..c5 and a top-down feature pyramid, levels joined along the length.

    c2 = Stage(in -> 160, s1), c3 (-> 192, s2), c4 (-> 224, s2), c5 (-> 256, s2).
    P5 = 1x1(c5); P_i = ConvTranspose(k3, stride of c_{i+1}, pad 1)(P_{i+1}) + 1x1(c_i), the
    transposed conv sized to c_i's length (so any input length works). Output
    ``[P5, P4, P3, P2]`` concatenated along the length, ``segment_lengths`` = their
    lengths (the team kept four tensors). Own graph: ``(B, 128, 80)`` ->
    ``(B, 256, 150)`` (10 + 20 + 40 + 80); 3,405,696 parameters.
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        widths: Sequence[int] = (160, 192, 224, 256),
        strides: Sequence[int] = (1, 2, 2, 2),
        fpn_channels: int = 256,
    ) -> None:
        super().__init__(in_channels, seq_len)
        widths = [int(w) for w in widths]
        if len(widths) != len(strides) or len(widths) < 2:
            raise ValueError(f"NadCore: widths {widths} and strides {list(strides)} need equal lengths >= 2")
        cin = [in_channels, *widths[:-1]]
        self.stages = nn.ModuleList(Stage(a, b, int(s)) for a, b, s in zip(cin, widths, strides, strict=True))
        self.lateral = nn.ModuleList(nn.Conv1d(w, fpn_channels, 1) for w in widths)  # c_i -> P width
        # level i + 1 -> level i undoes stage i + 1's stride (2 in the original)
        self.up = nn.ModuleList(
            nn.ConvTranspose1d(fpn_channels, fpn_channels, 3, stride=int(s), padding=1) for s in strides[1:]
        )
        self.out_channels = int(fpn_channels)
        lengths = [int(seq_len)]
        for s in strides:
            lengths.append((lengths[-1] - 1) // int(s) + 1)  # conv k3 pad 1 stride s
        self.segment_lengths = tuple(reversed(lengths[1:]))  # coarsest level first

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)  # c2, c3, c4, c5
        p = self.lateral[-1](feats[-1])  # P5
        levels = [p]
        for i in range(len(feats) - 2, -1, -1):  # P4, P3, P2: upsample the coarser level, add the lateral
            lateral = self.lateral[i](feats[i])
            p = self.up[i](p, output_size=[lateral.shape[-1]]) + lateral
            levels.append(p)
        return torch.cat(levels, dim=2)  # (B, fpn, l5 + l4 + l3 + l2)


# --------------------------------------------------------------------------------------------------
# final block
# --------------------------------------------------------------------------------------------------


def t5_bucket(relative: Tensor, num_buckets: int = 32, max_distance: int = 128) -> Tensor:
    """T5's bidirectional relative-position buckets (half per direction, log-spaced beyond ``num_buckets / 4``)."""
    half = num_buckets // 2
    ret = (relative > 0).long() * half  # keys after the query use the upper half
    n = relative.abs()
    exact = half // 2
    large = exact + (torch.log(n.float().clamp_min(1) / exact) / math.log(max_distance / exact) * (half - exact)).long()
    return ret + torch.where(n < exact, n, large.clamp(max=half - 1))


class SandwichEncoder(nn.Module):
    """x-transformers style encoder on ``(B, L, d)``: T5 relative-position bias, sandwich norm, final LayerNorm.

    Each layer: ``x += LN(Attn(LN(x)))`` then ``x += LN(FF(LN(x)))``; attention ``heads x
    dim_head`` with bias-free Q/K/V/out, scores scaled by ``dim_head^-0.5`` plus a learned
    bias per head and bucket (shared by all layers, multiplied by ``dim_head^0.5`` as in
    x-transformers); FF d -> 4 d (GELU) -> d with biases. ``depth`` x 1,051,904 + 256 + 512
    parameters at d = 256, 8 x 64.
    """

    def __init__(
        self, d: int, depth: int, heads: int = 8, dim_head: int = 64, ff_mult: int = 4, buckets: int = 32
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head, self.buckets = int(heads), int(dim_head), int(buckets)
        self.rel_bias = nn.Embedding(buckets, heads)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            attn = nn.ModuleDict(
                {
                    "pre": nn.LayerNorm(d),
                    "qkv": nn.Linear(d, 3 * inner, bias=False),
                    "out": nn.Linear(inner, d, bias=False),
                    "post": nn.LayerNorm(d),
                }
            )
            ff = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, ff_mult * d), nn.GELU(), nn.Linear(ff_mult * d, d))
            self.layers.append(nn.ModuleList([attn, ff, nn.LayerNorm(d)]))  # the last: FF's post-norm
        self.norm = nn.LayerNorm(d)

    def bias(self, length: int, device: torch.device) -> Tensor:
        """``(heads, L, L)`` additive attention bias from the key - query offsets."""
        pos = torch.arange(length, device=device)
        buckets = t5_bucket(pos[None, :] - pos[:, None], self.buckets)
        return self.rel_bias(buckets).permute(2, 0, 1) * self.dim_head**0.5

    def forward(self, x: Tensor) -> Tensor:
        b, length, _ = x.shape
        bias = self.bias(length, x.device).to(x.dtype)
        for attn, ff, ff_post in self.layers:
            q, k, v = attn["qkv"](attn["pre"](x)).view(b, length, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # softmax(q k / sqrt(dh) + bias) v
            x = x + attn["post"](attn["out"](a.transpose(1, 2).reshape(b, length, -1)))
            x = x + ff_post(ff(x))
        return self.norm(x)


class PositionConv(nn.Module):
    """The team's "aa" block on ``(B, L, d)``: positions as conv channels.

    Depthwise Conv1d (L groups, k=3, pad 1, bias) sliding along the feature axis ->
    BatchNorm over the L positions -> ELU; ``6 L`` parameters.
    """

    def __init__(self, length: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(length, length, 3, padding=1, groups=length), nn.BatchNorm1d(length), nn.ELU()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class NadFinal(FinalBlock):
    """One transformer head per pyramid level; prediction = the mean of the level predictions.

    With ``segment_lengths`` of as many levels as ``depths`` (after core=nad), level i
    reads its own tokens; otherwise every head reads the whole sequence. Level i:
    [aa block when ``position_conv[i]``] -> :class:`SandwichEncoder` of ``depths[i]``
    -> mean over tokens -> Linear d -> T K. ``deep_supervision=true`` returns the
    auxiliary term ``"deep"``: the mean over levels of the objective's loss on each
    level's own prediction (the team trained only on those; here the average is
    scored too). Own graph: ``(B, 256, 150)`` -> ``(B, 1, 1)``; 10,523,980 parameters.
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        n_targets: int = 1,
        outputs_per_target: int = 1,
        depths: Sequence[int] = (3, 3, 2, 2),
        position_conv: Sequence[bool] = (False, True, True, True),
        heads: int = 8,
        dim_head: int = 64,
        ff_mult: int = 4,
        deep_supervision: bool = False,
        segment_lengths: Sequence[int] | None = None,
    ) -> None:
        super().__init__(in_channels, seq_len, n_targets, outputs_per_target)
        if len(depths) != len(position_conv) or not depths:
            raise ValueError(f"NadFinal: depths {list(depths)} and position_conv {list(position_conv)} must match")
        n = len(depths)
        segs = tuple(int(s) for s in segment_lengths) if segment_lengths else ()
        self.segment_lengths = segs if len(segs) == n else None
        lengths = self.segment_lengths or (seq_len,) * n
        self.levels = nn.ModuleList(
            nn.Sequential(
                PositionConv(length) if conv else nn.Identity(),
                SandwichEncoder(in_channels, int(depth), heads, dim_head, ff_mult),
            )
            for length, depth, conv in zip(lengths, depths, position_conv, strict=True)
        )
        self.heads = nn.ModuleList(nn.Linear(in_channels, n_targets * outputs_per_target) for _ in range(n))
        self.deep_supervision = bool(deep_supervision)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor | tuple[Tensor, dict]:
        h = x.transpose(1, 2)  # (B, L, d)
        parts = h.split(self.segment_lengths, dim=1) if self.segment_lengths else [h] * len(self.levels)
        preds = [
            head(level(part).mean(dim=1)).view(-1, self.n_targets, self.outputs_per_target)
            for part, level, head in zip(parts, self.levels, self.heads, strict=True)
        ]
        out = torch.stack(preds).mean(dim=0)  # the team's inference: mean over levels
        if not (self.deep_supervision and self.training and batch is not None):
            return out

        def deep(objective, y: Tensor) -> Tensor:  # each level against the label, with the final config's loss
            return torch.stack([objective.loss(p, y) for p in preds]).mean()

        return out, {"deep": deep}

    def output_layers(self) -> list[nn.Module]:
        # the prediction is the mean of the level heads' outputs: the same shift of every head's bias shifts it
        # (and each level's own prediction, which deep supervision scores) by that amount
        return list(self.heads)
