"""Mixed precision: the final block runs in float32, collapse is a status, the guard leaves fp32 unchanged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import src.lit_modules.composer as composer
import src.train_task as train_task
from src.blocks.base import split_output
from src.lit_modules.prixfixe_module import is_collapsed
from src.sweep.identity import JobContext
from src.sweep.job import _ok_record
from src.train_task import build_datamodule, build_module, train
from tests.helpers import compose_cfg, tiny_bhi_resnet

QUIET = [
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.num_sanity_val_steps=0",
]


# ------------------------------------------------------------------------------------------- the detector
def test_detector_constant_and_working_predictions() -> None:
    lo, hi = torch.tensor([9.5]), torch.tensor([9.5])
    assert is_collapsed(lo, hi)  # zero spread
    assert is_collapsed(torch.tensor([9.5]), torch.tensor([9.5 + 1e-7]))  # float noise only
    assert not is_collapsed(torch.tensor([8.0]), torch.tensor([11.0]), torch.tensor(0.7))
    assert is_collapsed(torch.tensor([8.0]), torch.tensor([11.0]), torch.tensor(float("nan")))  # undefined r
    # two targets: one constant target is enough
    assert is_collapsed(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 1.0]), torch.tensor([0.5, float("nan")]))
    # an epoch without predictions is not a collapse
    assert not is_collapsed(torch.tensor([float("inf")]), torch.tensor([float("-inf")]))


TINY = [
    *tiny_bhi_resnet(),
    "data.source.n=200",
    "recipe.epochs=1",
    "recipe.batch_size=32",
    "recipe.steps_per_epoch=3",
    *QUIET,
]


def test_constant_predictor_ends_collapsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A head with zero weights and no learning predicts its bias: status collapsed, not ok; the warning
    names the causes it checked (the learning rate among them) instead of blaming the learning rate."""
    build = train_task.build_module

    def constant_module(cfg):
        module = build(cfg)
        with torch.no_grad():
            for p in module.net.final.parameters():
                p.zero_()
        return module

    monkeypatch.setattr(train_task, "build_module", constant_module)
    with caplog.at_level(logging.WARNING):
        summary = train(compose_cfg([*TINY, "recipe.lr=1e-12"], run_dir=tmp_path))  # lr 0 is refused
    assert summary["status"] == "collapsed"
    (warning,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("collapsed:")]
    assert "Checked: the training targets vary" in warning and "they span [" in warning
    assert "within the declared range [0, 17]" in warning and "recipe.lr=1e-12" in warning
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "collapsed"
    ctx = JobContext(
        overrides={"first": "bhi", "core": "resnet", "final": "resnet"}, sweep_dir=tmp_path, job_dir=tmp_path
    )
    assert _ok_record(summary, ctx, 1.0)["status"] == "collapsed"


def test_working_predictor_ends_ok(tmp_path: Path) -> None:
    summary = train(compose_cfg(TINY, run_dir=tmp_path))
    assert summary["status"] == "ok"
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "ok"


# ------------------------------------------------------------------------------------ fp32 is unchanged
# The float32 final block (composer.run_in_param_precision) must be the plain call when autocast is off. Both
# runs happen in this process on this CPU, so they are compared exactly: fp32 kernels differ between CPUs
# (AMX, AVX512, AVX2), so numbers recorded on one machine are not a reference for another.
def _plain_call(block, x, batch):
    return block(x, batch)


@pytest.mark.parametrize("final", ["resnet", "unlockdna"])
def test_the_float32_final_block_changes_nothing_in_fp32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, final: str
) -> None:
    run = [*tiny_bhi_resnet(final=final), "data.source.n=200", "recipe.epochs=2", "recipe.batch_size=32", *QUIET]
    guarded = train(compose_cfg(run, run_dir=tmp_path / "guarded"))
    with monkeypatch.context() as patch:
        patch.setattr(composer, "run_in_param_precision", _plain_call)
        plain = train(compose_cfg(run, run_dir=tmp_path / "plain"))
    assert guarded["global_step"] == plain["global_step"] > 0
    assert guarded["metrics"] == plain["metrics"] and guarded["metrics"]
    weights = [
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        for run in ("guarded", "plain")
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_final_block_computes_in_float32_under_autocast() -> None:
    """Under bf16 autocast the guard gives the head's float32 output where the plain call gives bf16."""
    module = build_module(compose_cfg([*tiny_bhi_resnet(), "logger=none"])).eval()
    x = torch.randn(4, module.processing.channels, module.processing.seq_len)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features, _ = split_output(module.net.core(split_output(module.net.first(x))[0]))
        guarded, _ = split_output(composer.run_in_param_precision(module.net.final, features, None))
        plain, _ = split_output(_plain_call(module.net.final, features, None))
    assert guarded.dtype == torch.float32 and plain.dtype == torch.bfloat16


# ------------------------------------------------------------------------- bf16 no longer collapses
# Combinations whose validation predictions bf16 rounded to a handful of values (or one) before the fix:
# core=bhi with final=resnet (raw target near 10: bf16 steps of 0.0625) and with final=unlockdna.
PREVIOUSLY_COLLAPSING = {
    "bhi-bhi-resnet": ["final=resnet"],
    "bhi-bhi-unlockdna": ["final=unlockdna"],
}


@pytest.mark.parametrize("name", sorted(PREVIOUSLY_COLLAPSING))
def test_bf16_training_keeps_predictions_distinct(tmp_path: Path, name: str) -> None:
    run = [
        "first=bhi",
        "core=bhi",
        *PREVIOUSLY_COLLAPSING[name],
        "processing=onehot",
        "first.block.out_channels=16",
        "core.block.hidden=16",
        "core.block.out_channels=32",
        "data.source.n=600",
        "recipe.epochs=1",
        "recipe.batch_size=32",
        "recipe.steps_per_epoch=24",
        "trainer.precision=bf16-mixed",
        *QUIET,
    ]
    cfg = compose_cfg(run, run_dir=tmp_path)
    summary = train(cfg)
    assert summary["status"] == "ok" and summary["global_step"] == 24
    module = train_task.PrixFixeModule.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt").eval()
    datamodule = build_datamodule(cfg, module)
    datamodule.setup("fit")
    distinct = {}
    for autocast in (False, True):  # the same weights, scored as bf16-mixed validation does and in fp32
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            pred = torch.cat([module(b["x"], b)[:, 0] for b in datamodule.val_dataloader()])
        distinct[autocast] = pred.unique().numel()
    # before the fix bf16 left 4 (final=resnet) and 27 (final=unlockdna) of the 43 distinct fp32 values
    assert distinct[True] >= 0.9 * distinct[False] > 10


# ------------------------------------------------------------------------- leaderboard and heatmaps
def test_heatmap_tells_collapsed_failed_rejected_and_not_run_apart(tmp_path: Path) -> None:
    from src.sweep.ledger import LEDGER_NAME, append_record, make_record
    from src.sweep.summarize import heatmap_figure, summarize

    ledger = tmp_path / LEDGER_NAME
    outcomes = {("a", "a"): "ok", ("a", "b"): "collapsed", ("b", "a"): "failed", ("c", "a"): "rejected"}
    for (first, core), status in outcomes.items():
        metrics = {"val/pearson": 0.5} if status == "ok" else {"val/mse": 7.9} if status == "collapsed" else None
        error = "boom" if status in ("failed", "rejected") else None
        overrides = {"first": first, "core": core, "final": "f", "seed": 0}
        append_record(ledger, make_record(overrides=overrides, status=status, metrics=metrics, error=error))
    rows = summarize(tmp_path)["rows"]
    by_cell = {(r["first"], r["core"]): r for r in rows}
    assert {cell: by_cell[cell]["outcome"] for cell in outcomes} == outcomes
    assert [r["rank"] for r in rows if r["outcome"] != "ok"] == [None, None, None]
    assert "1 collapsed" in (tmp_path / "leaderboard.md").read_text()
    fig = heatmap_figure(rows, "val/pearson", ["a", "b", "c"], ["a", "b"], ["f"], "t", 0.0, 1.0)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    outcomes = [text.split(" = ")[0] for text in legend if not text.startswith("small type")]  # not the n note
    assert outcomes == ["c", "x", "r", "blank"]  # (b, b) and (c, b) never ran
    markers = {t.get_text() for t in fig.axes[0].texts}
    assert {"c", "x", "r", "0.50"} <= markers
