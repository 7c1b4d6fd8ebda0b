"""The tasks behind ``interpret.py`` and ``variant_effect.py``: what a trained model learned, on the user's reads.

Hydra glue only: reads are validated and mapped by :mod:`src.interpret.read_model`, scored by
:mod:`src.interpret.attribution` (or :mod:`src.interpret.motifs` for ``method=marginalize``) and
written whole by :mod:`src.interpret.outputs`; variant effects are :mod:`src.interpret.variants`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, ListConfig

from src.checkpoint import load_module
from src.datamodules.readers import read_sequences
from src.datamodules.table_formats import data_set_tables
from src.errors import ConfigError
from src.interpret.attribution import METHODS, attribute
from src.interpret.motifs import HEADER, marginalize_motif, random_backgrounds
from src.interpret.outputs import TOP_TSV, plot_logos, save_scores, staged_folder, top_positions
from src.interpret.read_model import ReadModel, prepare_reads
from src.interpret.variants import effect_correlations, read_pairs, variant_effects
from src.utils.io import atomic_write_text, write_json
from src.validate import check_output_folder

log = logging.getLogger(__name__)

MOTIF_TSV = "motif_effects.tsv"


def _output_folder(cfg: DictConfig) -> Path:
    output = Path(cfg.output)
    if output.exists() and not output.is_dir():
        raise ConfigError(f"output: {output} is a file, expected a folder")
    check_output_folder(output.parent, "output", create=True)
    return output


def _orientation(cfg: DictConfig) -> str | None:
    """``orientation`` (mpra models): forward or reverse; ``both`` is two runs, one line says so."""
    orientation = cfg.get("orientation")
    if orientation == "both":
        raise ConfigError("orientation=both: run once with orientation=forward and once with orientation=reverse")
    return orientation


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, ListConfig | list | tuple) else [value]


def _read_model(module: Any, layouts: list, cfg: DictConfig) -> ReadModel:
    rc = cfg.get("rc_average")
    return ReadModel(
        module,
        layouts,
        rc_average=None if rc is None else bool(rc),
        precision=str(cfg.get("precision", "32")),
        device=cfg.get("device", "cpu"),
    )


def interpret(cfg: DictConfig) -> dict[str, Any]:
    """``interpret.py``: per-base scores of the input reads, or motif effects for ``method=marginalize``."""
    method = str(cfg.get("method", "ism"))
    if method not in (*METHODS, "marginalize"):
        raise ConfigError(f"method: {method!r} is not one of {', '.join(METHODS)}, marginalize")
    output = _output_folder(cfg)
    module = load_module(cfg.ckpt_path)
    if method == "marginalize":
        return _marginalize(cfg, module, output)
    if not cfg.get("input"):
        raise ConfigError(f"input: method={method} scores the reads of a file (input=<fasta|txt|tsv>)")
    records = read_sequences(cfg.input, data_set_tables())
    reads = prepare_reads(module, records.sequences, records.path, records.lines, records.ids, _orientation(cfg))
    model = _read_model(module, reads.layouts, cfg)
    scores = attribute(
        model,
        reads,
        method,
        target=int(cfg.get("target", 0)),
        batch_size=int(cfg.get("batch_size", 512)),
        progress=bool(cfg.get("progress", True)),
        ig_steps=int(cfg.get("ig_steps", 32)),
        n_shuffles=int(cfg.get("n_shuffles", 20)),
        seed=int(cfg.get("seed", 0)),
    )
    with staged_folder(output) as folder:
        save_scores(folder, scores, reads.sequences, reads.lengths, method)
        atomic_write_text(folder / TOP_TSV, top_positions(scores, reads.sequences, int(cfg.get("n_top", 10))))
        logos = plot_logos(folder, scores, reads.sequences, reads.lengths, int(cfg.get("n_logos", 5)))
    print(f"wrote {method} scores of {len(reads.sequences)} reads, {TOP_TSV} and {len(logos)} logo(s) to {output}")
    return {"method": method, "n": len(reads.sequences), "output": str(output)}


def _marginalize(cfg: DictConfig, module: Any, output: Path) -> dict[str, Any]:
    motifs = _list(cfg.get("motif"))
    if not motifs:
        raise ConfigError("motif: method=marginalize needs motif=<IUPAC or planted motif name> (or a list)")
    given = cfg.get("backgrounds")
    if given is None:
        raise ConfigError("backgrounds: method=marginalize needs backgrounds=<reads file> or a number of random reads")
    if isinstance(given, int) or str(given).isdigit():
        length = cfg.get("background_length") or module.processing.length_range()[1]
        sequences = random_backgrounds(int(given), int(length), int(cfg.get("seed", 0)))
        path, lines, ids = None, None, None
    else:
        records = read_sequences(str(given), data_set_tables())
        sequences, path, lines, ids = records.sequences, records.path, records.lines, records.ids
    reads = prepare_reads(module, sequences, path, lines, ids, _orientation(cfg))
    model = _read_model(module, reads.layouts, cfg)
    starts = [int(s) for s in _list(cfg.get("positions"))] or None
    effects = []
    for motif in motifs:
        effects += marginalize_motif(
            model, reads, str(motif), starts, int(cfg.get("target", 0)), int(cfg.get("batch_size", 512))
        )
    table = "\n".join([HEADER, *(e.row() for e in effects)]) + "\n"
    summary = {
        f"{e.motif}|{e.strand}|{e.start}": {"mean": float(e.effects.mean()), "sd": float(np.std(e.effects, ddof=1))}
        for e in effects
    }
    with staged_folder(output) as folder:
        atomic_write_text(folder / MOTIF_TSV, table)
        write_json(folder / "motif_effects.json", summary)
    print(table, end="")
    print(f"wrote {MOTIF_TSV} ({len(effects)} rows, {len(reads.sequences)} backgrounds) to {output}")
    return {"method": "marginalize", "effects": summary, "output": str(output)}


def variant_effect(cfg: DictConfig) -> dict[str, Any]:
    """``variant_effect.py``: predicted ``alt - ref`` per pair (TSV), with correlations when ``measured`` is given."""
    output = Path(cfg.output)
    if output.is_dir():
        raise ConfigError(f"output: {output} is a folder, expected a file path")
    check_output_folder(output.parent, "output", create=True)
    module = load_module(cfg.ckpt_path)
    pairs = read_pairs(cfg.pairs)
    rc = cfg.get("rc_average")
    effects = variant_effects(
        module,
        pairs.ref,
        pairs.alt,
        path=pairs.path,
        batch_size=int(cfg.get("batch_size", 512)),
        rc_average=None if rc is None else bool(rc),
        device=cfg.get("device", "auto"),
        progress=bool(cfg.get("progress", True)),
        orientation=_orientation(cfg),
        precision=str(cfg.get("precision", "32")),
    )
    names = list(module.hparams.get("target_names") or [])
    columns = ["effect"] if effects.shape[1] == 1 else [f"effect_{n}" for n in (names or range(effects.shape[1]))]
    lines = ["\t".join([*pairs.header, *columns])]
    lines += ["\t".join([*row, *(f"{v:.6g}" for v in values)]) for row, values in zip(pairs.rows, effects)]
    result: dict[str, Any] = {"n": len(pairs.ref), "output": str(output)}
    if pairs.measured is not None:
        result["correlations"] = effect_correlations(effects[:, 0], pairs.measured)
    atomic_write_text(output, "\n".join(lines) + "\n")
    if pairs.measured is not None:
        stats = output.with_name(output.name + ".scores.json")
        write_json(stats, result["correlations"])
        c = result["correlations"]
        print(f"pearson r = {c['pearson']:.4f}, spearman rho = {c['spearman']:.4f} over {c['n']} pairs ({stats})")
    print(f"wrote {len(pairs.ref)} variant effects to {output}")
    return result
