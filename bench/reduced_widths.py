"""The same block structure at widths a CPU can train in minutes (the fair-recipe and precision benches on a CPU).

Each block keeps its kind of layers; widths shrink, and two deep blocks keep fewer repeats. Per family (configured
values in brackets):

* first: BHI convolves to 32 channels (512; 320 in the DREAM models), autosome to 32 (256), ResNet to 16 (64); SYSU
  embeds into 16 dimensions (512).
* core: BHI's BiLSTM has 16 units per direction (320) and its two convolution branches 32 channels together (320);
  SYSU has one transformer layer (3) of two heads (8); autosome has two stages of 32 and 16 channels (six: 128,
  128, 64 x 4).
* final: BHI's two hidden layers are 16 wide (64).

A family not listed keeps its configured widths. ``dream_cnn`` and ``dream_rnn`` name their block triples
(:data:`BLOCKS_OF`) and get the reductions of those blocks.
"""

from __future__ import annotations

# group -> family -> Hydra overrides that shrink it (same structure, a CPU's time)
REDUCED: dict[str, dict[str, list[str]]] = {
    "first": {
        "bhi": ["first.block.out_channels=32"],
        "resnet": ["first.block.out_channels=16"],
        "sysu": ["first.block.d_model=16"],
        "autosome": ["first.block.out_channels=32"],
    },
    "core": {
        "bhi": ["core.block.hidden=16", "core.block.out_channels=32"],
        "sysu": ["core.block.n_layers=1", "core.block.n_heads=2"],
        "autosome": ["core.block.stage_widths=[32,16]"],
    },
    "final": {"bhi": ["final.block.hidden=[16,16]"]},
}
# the named DREAM models' (first, core, final) blocks
BLOCKS_OF = {"dream_cnn": ("bhi", "autosome", "autosome"), "dream_rnn": ("bhi", "bhi", "autosome")}


def blocks(name: str) -> tuple[str, str, str]:
    """The (first, core, final) families of ``dream_cnn``, ``dream_rnn`` or a ``first-core-final`` name."""
    return BLOCKS_OF.get(name) or tuple(name.split("-"))  # type: ignore[return-value]


def reduced(name: str) -> list[str]:
    """The overrides that reduce combination ``name``'s widths (``[]`` where no block of it has a reduction)."""
    first, core, final = blocks(name)
    return REDUCED["first"].get(first, []) + REDUCED["core"].get(core, []) + REDUCED["final"].get(final, [])
