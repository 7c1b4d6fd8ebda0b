"""Unlock_DNA (DREAM 2022 rank 3): Conformer/Macaron transformer with prediction tokens.

Own graph (docs/menu.md §4), input from ``processing=unlockdna`` (one-hot over
A, C, G, T, N, M of the 2 x 100 both-strand layout):
``(B, 6, 200)`` -> first ``(B, 512, 232)`` (32 prediction tokens + 200 positions)
-> core ``(B, 512, 232)`` -> final ``(B, 1, 1)`` expression, plus the masked-nucleotide
reconstruction loss ``"recon"`` when the batch carries ``mask`` and ``tokens``.

Weights start as in the TensorFlow original (Keras defaults): Glorot-uniform kernels
with Keras' fan rule, zero biases, LayerNorm 1 / 0, embeddings U(-0.05, 0.05).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from src.blocks.base import Batch, Block, FinalBlock, SameConv1d

LN_EPS = 1e-6  # every LayerNormalization of the original uses epsilon 1e-6
EMBED_INIT = 0.05  # Keras Embedding default: uniform(-0.05, 0.05)


@torch.no_grad()
def glorot_(weight: Tensor, fan_in: int, fan_out: int) -> None:
    """Keras Glorot-uniform with explicit fans: U(-a, a), a = sqrt(6 / (fan_in + fan_out))."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    weight.uniform_(-bound, bound)


@torch.no_grad()
def keras_init(module: nn.Module) -> None:
    """Keras defaults for every Linear/Conv1d/LayerNorm below ``module``.

    Glorot fans follow Keras: a Dense kernel ``(in, out)``; a conv kernel
    ``(k, in / groups, out)`` gives ``fan_in + fan_out = k (in / groups + out)``, which
    is what ``xavier_uniform_`` computes on the PyTorch weight too. Biases are zero.
    Blocks re-initialise their own special cases (k-mer Dense, attention) afterwards.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv1d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()


# --------------------------------------------------------------------------------------------------
# first block
# --------------------------------------------------------------------------------------------------


class UnlockdnaFirst(Block):
    """k-mer embedding + learned position and strand embeddings + prepended prediction tokens.

    1. k-mer embedding: the original flattens each 10-mer window (SAME padding, 4 left /
       5 right) of the one-hot and applies Dense(6 k -> d) with bias, which is exactly
       a Conv1d(in -> d, k) with that padding.
    2. + learned positional embedding, one ``d`` vector per position (``seq_len x d``,
       sized from the composed input length).
    3. + learned strand embedding: index 0 for positions ``< seq_len // 2``, 1 for the
       rest. On the unlockdna processing's 2 x 100 layout this marks the given strand
       (0-99) versus its reverse complement (100-199). On any other input it is only a
       learned offset for the first versus the second half of the positions (the
       second half gets the extra position when ``seq_len`` is odd); disable it with
       ``strand_embedding=False``.
    4. prepend ``n_tokens`` prediction ("pseudo-expression") tokens: Dense(1 -> d)
       applied to zeros, as in the original, so every token equals that layer's bias
       (the kernel is counted but never receives a gradient). They get no position or
       strand embedding. ``prefix_tokens = n_tokens`` tells later blocks where the
       sequence positions start.

    Own graph: ``(B, 6, 200)`` -> ``(B, 512, 232)``; 135,680 parameters
    (k-mer 31,232 + position 102,400 + strand 1,024 + tokens 1,024).
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        d_model: int = 512,
        kmer: int = 10,
        n_tokens: int = 32,
        strand_embedding: bool = True,
    ) -> None:
        super().__init__(in_channels, seq_len)
        if d_model < 1 or kmer < 1 or n_tokens < 0:
            raise ValueError(
                f"UnlockdnaFirst: d_model={d_model}, kmer={kmer} must be >= 1 and n_tokens={n_tokens} >= 0"
            )
        self.out_channels = int(d_model)
        self.prefix_tokens = int(n_tokens)
        # k-mer Dense over sliding windows == "same" conv with bias (pad 4 left / 5 right for k = 10)
        self.kmer = SameConv1d(in_channels, d_model, kmer)
        self.position = nn.Parameter(torch.empty(seq_len, d_model))
        self.strand = nn.Parameter(torch.empty(2, d_model)) if strand_embedding else None
        # strand index per position: 0 on the first half, 1 on the second
        self.register_buffer("strand_index", (torch.arange(seq_len) >= seq_len // 2).long(), persistent=False)
        # Dense(1 -> d) applied to a zero input: the tokens are its bias
        self.expression = nn.Linear(1, d_model) if n_tokens > 0 else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        keras_init(self)
        # the original's Dense sees a flattened (k x in_channels) window: fan_in = k * in, fan_out = d
        glorot_(self.kmer.weight, self.kmer.kernel_size[0] * self.in_channels, self.out_channels)
        self.position.uniform_(-EMBED_INIT, EMBED_INIT)
        if self.strand is not None:
            self.strand.uniform_(-EMBED_INIT, EMBED_INIT)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        b, _, length = x.shape
        if length != self.seq_len:
            raise ValueError(f"UnlockdnaFirst was built for length {self.seq_len}, got input of length {length}")
        h = self.kmer(x)  # (B, d, L): one d-vector per k-mer window
        emb = self.position  # (L, d)
        if self.strand is not None:
            emb = emb + self.strand[self.strand_index]  # (L, d): position + strand of each position
        h = h + emb.t().unsqueeze(0)  # broadcast over the batch
        if self.expression is None:
            return h
        # prediction tokens: Dense(1 -> d) of zeros -> (B, n_tokens, d), channels first like h
        zeros = h.new_zeros(b, self.prefix_tokens, 1)
        tokens = self.expression(zeros).transpose(1, 2)
        return torch.cat([tokens, h], dim=2)  # (B, d, n_tokens + L)


# --------------------------------------------------------------------------------------------------
# core block
# --------------------------------------------------------------------------------------------------


class FeedForwardSwiGLU(nn.Module):
    """LayerNorm -> Linear d -> m d (no bias) -> SwiGLU -> Dropout -> Linear m d / 2 -> d (no bias) -> Dropout.

    On the token layout ``(B, L, d)``; ``2 m d^2 * 3/4 + 2 d`` parameters (m = ``ff_mult``).
    """

    def __init__(self, d: int, ff_mult: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = ff_mult * d
        if hidden % 2:
            raise ValueError(f"FeedForwardSwiGLU: ff_mult * d = {hidden} must be even (SwiGLU halves it)")
        self.norm = nn.LayerNorm(d, eps=LN_EPS)
        self.expand = nn.Linear(d, hidden, bias=False)
        self.contract = nn.Linear(hidden // 2, d, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.expand(self.norm(x)).chunk(2, dim=-1)  # first half value, second half gate
        h = self.dropout(value * F.silu(gate))  # SwiGLU: value * swish(gate)
        return self.dropout(self.contract(h))


class ConvModule(nn.Module):
    """LayerNorm -> depthwise Conv1d k ("same", no bias) -> pointwise d -> d (bias) -> ReLU -> Dropout.

    The original's Keras SeparableConv1D with ReLU; ``(B, L, d)`` in and out. With
    ``keep_normalized=True`` it returns ``LN(x) + conv(LN(x))`` instead of ``conv(LN(x))``: the
    layer then computes the published DREAM-Attn residual ``x + LN(x) + conv(LN(x))``.
    """

    def __init__(self, d: int, kernel_size: int = 15, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d, eps=LN_EPS)
        self.depthwise = SameConv1d(d, d, kernel_size, groups=d, bias=False)  # one filter per channel
        self.pointwise = nn.Conv1d(d, d, 1)  # mixes channels, with bias
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep_normalized: bool = False) -> Tensor:
        n = self.norm(x)
        h = torch.relu(self.pointwise(self.depthwise(n.transpose(1, 2))))  # (B, d, L) for the convolutions
        h = self.dropout(h.transpose(1, 2))  # back to (B, L, d)
        return n + h if keep_normalized else h


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with separate q/k/v projections d -> h * key_dim and output h * key_dim -> d (all biased).

    ``key_dim=None`` uses ``ceil(d / n_heads)`` per head: with ``d % n_heads == 0`` this is
    PyTorch's layout, and the weights map one-to-one onto ``nn.MultiheadAttention``
    (``in_proj_weight = cat(q, k, v)``, head i = features ``i*key_dim .. (i+1)*key_dim``).
    An int is Keras' layout (``key_dim`` per head; the original used 512 with 8 heads).
    Scores are scaled by ``key_dim^-0.5``; no attention mask (N padding is attended,
    as in the original).
    """

    def __init__(self, d: int, n_heads: int, key_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if n_heads < 1:
            raise ValueError(f"MultiHeadSelfAttention: n_heads={n_heads} must be >= 1")
        self.n_heads = int(n_heads)
        self.key_dim = int(key_dim) if key_dim else math.ceil(d / n_heads)
        inner = self.n_heads * self.key_dim
        self.q = nn.Linear(d, inner)
        self.k = nn.Linear(d, inner)
        self.v = nn.Linear(d, inner)
        self.out = nn.Linear(inner, d)
        self.dropout = float(dropout)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Keras MultiHeadAttention init: Glorot on its 3-D kernels, whose fans Keras computes as
        ``(d, h, kd)`` -> ``(h d, kd d)`` for q/k/v and ``(h, kd, d)`` -> ``(kd h, d h)`` for the output."""
        d, h, kd = self.q.in_features, self.n_heads, self.key_dim
        for proj in (self.q, self.k, self.v):
            glorot_(proj.weight, h * d, kd * d)
            proj.bias.zero_()
        glorot_(self.out.weight, kd * h, d * h)
        self.out.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        b, length, _ = x.shape

        def heads(t: Tensor) -> Tensor:  # (B, L, h * kd) -> (B, h, L, kd)
            return t.view(b, length, self.n_heads, self.key_dim).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        # softmax(q k^T / sqrt(kd)) v for every head at once
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, length, self.n_heads * self.key_dim)  # concatenate the heads
        return self.out(y)


CONV_RESIDUALS = ("original", "published")
INITS = ("keras", "pytorch")


class ConformerLayer(nn.Module):
    """One Macaron/Conformer layer on ``(B, L, d)``.

    x += FF1(x) / 2; x += ConvModule(x); x = LayerNorm(x); x += MHA(x); x += FF2(x) / 2.
    ``conv_residual="published"``: the second step is x += LN(x) + conv(LN(x)) instead (the
    organisers' DREAM-Attn), with the same parameters.
    """

    def __init__(
        self,
        d: int,
        n_heads: int = 8,
        key_dim: int | None = None,
        kernel_size: int = 15,
        dropout: float = 0.1,
        ff_mult: int = 4,
        conv_residual: str = "original",
    ) -> None:
        super().__init__()
        if conv_residual not in CONV_RESIDUALS:
            raise ValueError(f"conv_residual={conv_residual!r}: expected one of {', '.join(CONV_RESIDUALS)}")
        self.published_residual = conv_residual == "published"
        self.ff1 = FeedForwardSwiGLU(d, ff_mult, dropout)
        self.conv = ConvModule(d, kernel_size, dropout)
        self.norm = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = MultiHeadSelfAttention(d, n_heads, key_dim)
        self.ff2 = FeedForwardSwiGLU(d, ff_mult, dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + 0.5 * self.ff1(x)  # half-step feed-forward (Macaron)
        x = x + self.conv(x, keep_normalized=self.published_residual)  # local context
        x = self.norm(x)  # the residual stream itself is normalised here
        x = x + self.attn(x)  # global context
        return x + 0.5 * self.ff2(x)  # second half-step feed-forward


class UnlockdnaCore(Block):
    """``n_layers`` Conformer/Macaron layers; width ``d = in_channels`` and length unchanged.

    ``n_heads`` heads are really used (the Prix Fixe reference always ran 4);
    ``key_dim=None`` splits ``d`` across the heads (PyTorch layout), an int gives each
    head that width (Keras layout). ``positional_embedding=True`` first adds a learned
    ``(seq_len x d)`` embedding, as the Prix Fixe core does (needed after first blocks
    that carry no position information). The original is ``n_heads=8, key_dim=512,
    positional_embedding=False`` after :class:`UnlockdnaFirst`.

    Two options select the organisers' published DREAM-Attn instead of the team's original
    (both keep the parameters): ``conv_residual="published"`` makes the convolution step
    ``x + LN(x) + conv(LN(x))`` (original: ``x + conv(LN(x))``), and ``init="pytorch"`` keeps
    PyTorch's default initialisation of every Linear/Conv1d/LayerNorm and draws the positional
    embedding from N(0, 1) like ``nn.Embedding`` (original, ``"keras"``: Keras' Glorot-uniform
    kernels, zero biases, embeddings U(-0.05, 0.05)).

    Own graph: ``(B, 512, 232)`` -> ``(B, 512, 232)``; 47,286,272 parameters in the
    original configuration (11,821,568 per layer). DREAM-Attn (``d`` 256, 4 heads,
    key_dim None, positional embedding, length 150): 4,523,520.
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        n_layers: int = 4,
        n_heads: int = 8,
        key_dim: int | None = None,
        kernel_size: int = 15,
        dropout: float = 0.1,
        ff_mult: int = 4,
        positional_embedding: bool = False,
        conv_residual: str = "original",
        init: str = "keras",
    ) -> None:
        super().__init__(in_channels, seq_len)
        if init not in INITS:
            raise ValueError(f"UnlockdnaCore: init={init!r}: expected one of {', '.join(INITS)}")
        self.out_channels = in_channels
        self.init = init
        self.position = nn.Parameter(torch.empty(seq_len, in_channels)) if positional_embedding else None
        self.layers = nn.Sequential(
            *(
                ConformerLayer(in_channels, n_heads, key_dim, kernel_size, dropout, ff_mult, conv_residual)
                for _ in range(n_layers)
            )
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        if self.init == "pytorch":
            for m in self.modules():
                if isinstance(m, nn.Linear | nn.Conv1d | nn.LayerNorm):
                    m.reset_parameters()  # PyTorch's own default for each layer type
            if self.position is not None:
                self.position.normal_()  # nn.Embedding's default N(0, 1)
            return
        keras_init(self)
        for m in self.modules():
            if isinstance(m, MultiHeadSelfAttention):
                m.reset_parameters()
        if self.position is not None:
            self.position.uniform_(-EMBED_INIT, EMBED_INIT)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor:
        h = x.transpose(1, 2)  # (B, L, d): the transformer works on tokens
        if self.position is not None:
            if h.shape[1] != self.seq_len:
                raise ValueError(f"UnlockdnaCore was built for length {self.seq_len}, got length {h.shape[1]}")
            h = h + self.position  # learned embedding per position, broadcast over the batch
        return self.layers(h).transpose(1, 2)  # back to (B, d, L)


# --------------------------------------------------------------------------------------------------
# final block
# --------------------------------------------------------------------------------------------------


class UnlockdnaFinal(FinalBlock):
    """Expression from the prediction tokens; masked-nucleotide reconstruction as an auxiliary loss.

    * Expression: positions ``0 .. prefix_tokens - 1`` -> Dropout -> Linear d -> T K ->
      mean over those tokens. With ``prefix_tokens == 0`` (a first block without
      prediction tokens) the same head is averaged over all positions instead.
    * Reconstruction: positions ``prefix_tokens ..`` -> Linear d -> ``recon_classes``
      logits over A, C, G, T, N, M. When the batch carries ``mask`` (bool ``(B, L0)``)
      and ``tokens`` (long ``(B, L0)``, the unmasked codes) and the number of sequence
      positions equals ``L0``, the block returns ``(out, {"recon": loss})`` with
      ``loss = sum over masked positions of CE(logits, token) / (n_masked + 1)``; otherwise
      (evaluation, no masking, or a core that changed the length) it returns ``out`` only.

    ``prefix_tokens`` is passed by the composer from the first block. Returns
    ``(B, n_targets, outputs_per_target)``. Own graph: ``(B, 512, 232)`` -> ``(B, 1, 1)``;
    3,591 parameters (expression 513 + reconstruction 3,078).
    """

    def __init__(
        self,
        in_channels: int,
        seq_len: int,
        n_targets: int = 1,
        outputs_per_target: int = 1,
        prefix_tokens: int = 0,
        dropout: float = 0.1,
        recon_classes: int = 6,
    ) -> None:
        super().__init__(in_channels, seq_len, n_targets, outputs_per_target)
        if not 0 <= prefix_tokens < seq_len:
            raise ValueError(f"UnlockdnaFinal: prefix_tokens={prefix_tokens} must be in [0, seq_len={seq_len})")
        self.prefix_tokens = int(prefix_tokens)
        self.dropout = nn.Dropout(dropout)
        self.expression = nn.Linear(in_channels, n_targets * outputs_per_target)
        self.reconstruction = nn.Linear(in_channels, recon_classes)
        keras_init(self)

    def forward(self, x: Tensor, batch: Batch | None = None) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        h = x.transpose(1, 2)  # (B, L, d)
        p = self.prefix_tokens
        pred = h[:, :p] if p else h  # prediction tokens (or every position when there are none)
        expr = self.expression(self.dropout(pred)).mean(dim=1)  # one value per token, averaged
        out = expr.view(-1, self.n_targets, self.outputs_per_target)
        if batch is None or "mask" not in batch or "tokens" not in batch:
            return out
        mask, tokens = batch["mask"], batch["tokens"]
        seq = h[:, p:]  # the sequence positions, aligned with the input tokens
        if seq.shape[1] != mask.shape[1]:
            return out
        logits = self.reconstruction(seq).float()  # (B, L0, classes)
        ce = F.cross_entropy(logits.transpose(1, 2), tokens.long(), reduction="none")  # (B, L0)
        m = mask.to(ce.dtype)
        # sum over masked positions / (number masked + 1), as the original
        return out, {"recon": (ce * m).sum() / (m.sum() + 1.0)}

    def output_layers(self) -> list[nn.Module]:
        return [self.expression]  # one value per prediction token, averaged; reconstruction is auxiliary
