"""recipe.lr=auto (range test on a copy), the sweep's peak cache, recipe.retries, heads starting at the data."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from src.errors import ConfigError
from src.lr_range import LrSearch, find_peak, paired_losses, pick_peak, raw_losses
from src.sweep.job import run_ledgered
from src.sweep.ledger import read_ledger
from src.sweep.lr_cache import cached_search
from src.train_task import build_datamodule, build_module, train
from tests.helpers import (
    FAST,
    TINY_AUTOSOME,
    compose_cfg,
    make_ctx,
    read_wandb_records,
    tiny_bhi_resnet,
    tiny_run,
    train_cli,
)

# a ramp the tiny synthetic split can feed (30 steps x 8 reads <= 360 training reads)
AUTO = ["recipe.lr=auto", "recipe.lr_find.num_steps=30", "recipe.batch_size=8"]


def _search(peak: float = 0.01) -> LrSearch:
    return LrSearch(peak, "minimum", 30, 0.1, 1e-6, 1.0, peak * 10, peak, [1e-3, 1e-2], [1.0, 0.5])


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_finder_leaves_initial_weights_and_random_state_unchanged(tmp_path: Path) -> None:
    cfg = compose_cfg(FAST + TINY_AUTOSOME + AUTO, run_dir=tmp_path)
    torch.manual_seed(0)
    module = build_module(cfg)
    datamodule = build_datamodule(cfg, module)
    datamodule.setup("fit")
    module.objective.fit(datamodule.train_targets)
    before, rng = _state(module), torch.get_rng_state()
    search = find_peak(cfg, module, datamodule)
    after = _state(module)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(rng, torch.get_rng_state())
    assert search.steps == 30 and 1e-6 < search.peak < 1.0 and search.peak == pytest.approx(search.minimum_lr / 3)
    assert module.hparams.recipe["lr"] == "auto"  # only resolve_peak writes the found value


def test_auto_run_equals_a_run_at_the_found_peak(tmp_path: Path) -> None:
    """The range test changes nothing of the seeded run but its peak: same metrics and final weights."""
    auto = train(compose_cfg(FAST + TINY_AUTOSOME + AUTO + ["logger=wandb"], run_dir=tmp_path / "auto"))
    peak = auto["lr"]["peak"]
    (run_file,) = (tmp_path / "auto" / "wandb").glob("offline-run-*/run-*.wandb")
    config = {
        item.key: json.loads(item.value_json)
        for r in read_wandb_records(run_file)
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }
    assert config["lr/peak"] == peak and config["lr/source"] == "search" and config["lr/search_steps"] == 30
    assert auto["lr"]["source"] == "search" and auto["lr"]["search"]["steps"] == 30
    assert (tmp_path / "auto" / "lr_find.png").stat().st_size > 0
    assert "lr: " + repr(peak) in (tmp_path / "auto" / "config.yaml").read_text()  # the number, not auto
    fixed = train(compose_cfg(FAST + TINY_AUTOSOME + [*AUTO[1:], f"recipe.lr={peak!r}"], run_dir=tmp_path / "set"))
    assert fixed["lr"] == {"peak": peak, "source": "set"}
    assert auto["metrics"] == fixed["metrics"]
    weights = [torch.load(s["last_checkpoint"], weights_only=True)["state_dict"] for s in (auto, fixed)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize(
    ("override", "key"),
    [("recipe.lr=0", "recipe.lr"), ("recipe.lr=fast", "recipe.lr"), ("recipe.retries=-1", "recipe.retries")],
)
def test_bad_lr_settings_fail_before_data_is_read(tmp_path: Path, override: str, key: str) -> None:
    cfg = compose_cfg(
        [*tiny_run(data=False), "data=dream", f"data.path={tmp_path / 'absent.txt'}", override],
        run_dir=tmp_path / "run",
    )
    with pytest.raises(ConfigError, match=rf"^{key}=") as err:
        train(cfg)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_split_too_small_for_the_ramp_names_the_key(tmp_path: Path) -> None:
    cfg = compose_cfg(FAST + TINY_AUTOSOME + ["recipe.lr=auto", "recipe.lr_find.num_steps=100"], run_dir=tmp_path)
    with pytest.raises(ConfigError, match="recipe.lr_find.num_steps=100") as err:
        train(cfg)
    assert "\n" not in str(err.value) and not any(tmp_path.iterdir())


def test_a_small_split_feeds_a_longer_ramp_only_with_more_passes(tmp_path: Path) -> None:
    """100 steps x 8 reads need more than the tiny split's training reads: refused, unless passes allow it."""
    ramp = ["recipe.lr=auto", "recipe.lr_find.num_steps=100", "recipe.batch_size=8"]
    cfg = compose_cfg(FAST + TINY_AUTOSOME + ramp, run_dir=tmp_path)
    module = build_module(cfg)
    datamodule = build_datamodule(cfg, module)
    datamodule.setup("fit")
    module.objective.fit(datamodule.train_targets)
    assert len(datamodule.train_set) < 100 * 8 <= 2 * len(datamodule.train_set)
    with pytest.raises(ConfigError, match="recipe.lr_find.passes=1"):
        find_peak(cfg, module, datamodule)
    two = compose_cfg(FAST + TINY_AUTOSOME + [*ramp, "recipe.lr_find.passes=2"], run_dir=tmp_path)
    assert find_peak(two, module, datamodule).steps == 100
    with pytest.raises(ConfigError, match=r"^recipe.lr_find.passes=0 must be"):
        train(compose_cfg(FAST + TINY_AUTOSOME + [*ramp, "recipe.lr_find.passes=0"], run_dir=tmp_path / "bad"))


def test_passes_from_the_command_line(tmp_path: Path) -> None:
    """``python train.py ... recipe.lr_find.passes=2``: the longer ramp runs and its steps are reported."""
    ramp = ["recipe.lr=auto", "recipe.lr_find.num_steps=100", "recipe.batch_size=8", "recipe.lr_find.passes=2"]
    proc = train_cli([f"hydra.run.dir={tmp_path / 'run'}", *FAST, *TINY_AUTOSOME, *ramp], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["lr"]["source"] == "search" and summary["lr"]["search"]["steps"] == 100


def test_peak_rules_and_bad_ramps() -> None:
    lrs = list(np.logspace(-6, 0, 60))
    dip = [2.0 - np.exp(-(((i - 40) / 6.0) ** 2)) for i in range(60)]  # minimum at step 40
    options = {"skip_begin": 5, "divisor": 10.0, "rule": "minimum"}
    peak, minimum, steepest = pick_peak(lrs, dip, options)
    assert minimum == pytest.approx(lrs[40]) and peak == pytest.approx(lrs[40] / 10) and steepest < minimum
    assert pick_peak(lrs, dip, {**options, "rule": "steepest"})[0] == steepest
    with pytest.raises(ConfigError, match="never fell clearly below its start.*recipe.lr_find.max_lr"):
        pick_peak(lrs, [1.0 + 0.01 * i for i in range(60)], options)
    # a flat ramp whose per-step losses scatter: its lowest point is noise, not a minimum
    scatter = list(1.0 + 0.3 * np.random.default_rng(0).standard_normal(60))
    with pytest.raises(ConfigError, match=r"never fell clearly below its start over the range test \(.*noise"):
        pick_peak(lrs, scatter, options)
    # the same scatter on a real dip: the dip is found
    peak, minimum, _ = pick_peak(lrs, [d + 0.3 * (v - 1.0) / 3 for d, v in zip(dip, scatter, strict=True)], options)
    assert abs(np.log10(minimum / lrs[40])) < 0.5
    with pytest.raises(ConfigError, match="non-finite.*recipe.lr_find.min_lr"):
        pick_peak(lrs, [1.0, 0.9, float("nan"), *[float("nan")] * 57], options)
    with pytest.raises(ConfigError, match="non-finite while still decreasing"):
        pick_peak(lrs, [2.0 - 0.02 * i for i in range(30)] + [float("inf")] * 30, options)


def test_paired_losses_remove_what_the_batch_alone_explains() -> None:
    """The initial model's loss on each batch carries the batch effect; the difference keeps the ramp's trend."""
    rng = np.random.default_rng(1)
    batch_effect = 0.4 * rng.standard_normal(80)  # easy and hard batches, the same for every model
    trend = [2.0 - np.exp(-(((i - 55) / 8.0) ** 2)) for i in range(80)]
    ramp = [t + b for t, b in zip(trend, batch_effect, strict=True)]
    initial = [2.0 + b for b in batch_effect]
    paired = paired_losses(ramp, initial)
    level = float(np.mean(initial)) - 2.0
    assert paired == pytest.approx([t + level for t in trend])
    assert paired_losses(ramp, []) == ramp  # nothing scored: the ramp as recorded
    lrs = list(np.logspace(-6, 0, 80))
    options = {"skip_begin": 5, "divisor": 10.0, "rule": "minimum"}
    assert pick_peak(lrs, paired, options)[1] == pytest.approx(lrs[55])


def test_raw_losses_undo_lightnings_average() -> None:
    raw, avg, smoothed = [3.0, 1.0, 2.0, 0.5], 0.0, []
    for i, loss in enumerate(raw):  # lightning.pytorch.tuner.lr_finder._LRCallback.on_train_batch_end
        avg = 0.98 * avg + 0.02 * loss
        smoothed.append(avg / (1 - 0.98 ** (i + 2)))
    assert raw_losses(smoothed) == pytest.approx(raw)


def test_cached_peak_is_reused_across_seeds_and_a_bad_entry_is_rebuilt(tmp_path: Path, caplog) -> None:
    calls: list[int] = []

    def search() -> LrSearch:
        calls.append(1)
        return _search()

    identity = {"blocks": "a-b-c", "batch_size": 8}
    first = cached_search(tmp_path, identity, search)
    second = cached_search(tmp_path, identity, search)
    assert [s for _, s in (first, second)] == ["search", "cache"] and len(calls) == 1
    assert cached_search(tmp_path, {**identity, "batch_size": 16}, search)[1] == "search" and len(calls) == 2
    for path in (tmp_path / "lr_cache").glob("*.json"):
        path.write_text("{not json")
    assert cached_search(tmp_path, identity, search)[1] == "search" and len(calls) == 3
    assert "cannot be parsed" in caplog.text
    assert cached_search(tmp_path, identity, search, rerun=True)[1] == "search" and len(calls) == 4

    def failing() -> LrSearch:
        raise ConfigError("recipe.lr=auto: the smoothed training loss never decreased")

    with pytest.raises(ConfigError):
        cached_search(tmp_path, {"other": 1}, failing)
    assert len(list((tmp_path / "lr_cache").glob("*.json"))) == 2  # nothing written for the failed search


def _launch(sweep_dir: str, log: str) -> None:
    def search() -> LrSearch:
        with open(log, "a") as fh:
            fh.write("searched\n")
        time.sleep(1.5)  # long enough for the other launch to find the claim taken
        return _search(0.002)

    search_result, _ = cached_search(Path(sweep_dir), {"blocks": "x"}, search)
    assert search_result.peak == 0.002


def test_two_concurrent_launches_search_once(tmp_path: Path) -> None:
    log = tmp_path / "searches.log"
    ctx = multiprocessing.get_context("fork")  # two processes, as two launches are (fork: no re-import)
    procs = [ctx.Process(target=_launch, args=(str(tmp_path), str(log))) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text().splitlines() == ["searched"]


def test_forced_collapse_is_retried_at_a_third_of_the_peak(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, first="autosome", core="autosome", final="autosome", seed=0)
    cfg = compose_cfg(FAST + TINY_AUTOSOME + ["recipe.lr=1000", "recipe.retries=1"], run_dir=ctx.job_dir)
    run_ledgered(train, cfg, ctx)
    records = [r for r in read_ledger(ctx.ledger) if r["key"] == ctx.key]
    assert [r["attempt"] for r in records] == [1, 2]
    assert records[0]["lr"] == 1000 and records[1]["lr"] == pytest.approx(1000 / 3)
    assert records[0]["status"] in ("collapsed", "diverged") and records[0]["retried"]
    assert records[1]["lr_source"] == "retry" and records[1]["attempts"] == 2
    summary = json.loads((ctx.job_dir / "metrics.json").read_text())
    assert summary["attempt"] == 2 and summary["lr"]["first_peak"] == 1000
    assert (ctx.job_dir / "attempt-1" / "metrics.json").is_file()


def test_a_retry_keeps_the_range_test_curve_in_the_run_folder(tmp_path: Path) -> None:
    """The attempt's files move to attempt-1/; the curve that set the run's peak stays (and is copied there)."""
    from src.retries import _set_aside

    for name, text in (("metrics.json", "{}"), ("config.yaml", "a: 1"), ("lr_find.png", "png"), ("run.lock", "1")):
        (tmp_path / name).write_text(text)
    folder = _set_aside(tmp_path, 1)
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "lr_find.png", "metrics.json"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["lr_find.png", "run.lock"]


# raw-scale regression heads (NAD's with its knots removed: its prediction is the mean of four level heads)
RAW_SCALE_HEADS = {
    "resnet": [],
    "camformers": ["final.block.hidden=[8,8]"],
    "sysu": ["final.block.mlm=true"],
    "nad": ["final.block.depths=[1,1,1,1]", "final.block.heads=2", "final.block.dim_head=8"]
    + ["final.objective.target_knots=null"],
}


@pytest.mark.parametrize("final", sorted(RAW_SCALE_HEADS))
@torch.no_grad()
def test_head_bias_starts_at_the_training_mean(final: str) -> None:
    """Every layer the final block names as its output starts at the training mean, so with their weights at
    zero the block predicts exactly that mean (NAD: the mean of its level heads, not a quarter of it)."""
    from src.head_bias import start_head_at_targets

    y = torch.tensor([[3.0], [11.0], [13.0], [9.0]])
    module = build_module(compose_cfg(tiny_bhi_resnet(final) + RAW_SCALE_HEADS[final]))
    module.objective.fit(y)
    assert start_head_at_targets(module, y).tolist() == pytest.approx([9.0])
    layers = module.net.final.output_layers()
    assert [layer.bias.tolist() for layer in layers] == [pytest.approx([9.0])] * len(layers)
    for layer in layers:
        layer.weight.zero_()
    channels, length = module.net.report[0].in_shape
    out, _ = module.eval().net(torch.rand(2, channels, length))
    assert out.flatten().tolist() == pytest.approx([9.0, 9.0])


def test_a_fresh_head_that_keeps_its_start_is_unchanged() -> None:
    from src.head_bias import start_head_at_targets

    y = torch.tensor([[3.0], [11.0], [13.0], [9.0]])
    kept = {  # soft-bin, standardised and knot-mapped heads, and a sigmoid output on the raw scale
        "autosome": [],
        "bhi": ["final.block.hidden=[8,8]"],
        "metformin": [],
        "metformin-raw": ["final.objective.target_knots=null"],
    }
    for final, extra in kept.items():
        module = build_module(compose_cfg(tiny_bhi_resnet(final.split("-")[0]) + extra))
        module.objective.fit(y)
        before = _state(module)
        assert start_head_at_targets(module, y) is None
        assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_a_final_block_naming_a_layer_of_another_width_is_refused(monkeypatch) -> None:
    from src.blocks.resnet import ResnetFinal
    from src.head_bias import start_head_at_targets

    y = torch.tensor([[3.0], [11.0]])
    module = build_module(compose_cfg(tiny_bhi_resnet("resnet")))
    module.objective.fit(y)
    monkeypatch.setattr(ResnetFinal, "output_layers", lambda self: [self.head[1]])  # the hidden Linear
    with pytest.raises(ValueError, match=r"ResnetFinal.output_layers\(\) names Linear with 8 bias values"):
        start_head_at_targets(module, y)


def test_seeded_runs_of_unaffected_finals_are_unchanged(tmp_path: Path, monkeypatch) -> None:
    """A soft-bin head trains exactly as without the head-bias start (same run, with and without the hook)."""
    import src.train_task as train_task

    overrides = FAST + TINY_AUTOSOME
    with_hook = train(compose_cfg(overrides, run_dir=tmp_path / "hook"))
    monkeypatch.setattr(train_task, "start_head_at_targets", lambda *args, **kwargs: None)
    without = train(compose_cfg(overrides, run_dir=tmp_path / "plain"))
    assert with_hook["metrics"] == without["metrics"]


def _ledger(sweep: Path, rows: list[tuple[float, int, float, float, int]]) -> None:
    from src.sweep.ledger import append_record, make_record

    for lr, seed, val, test, attempt in rows:
        overrides = {"first": "a", "core": "b", "final": "c", "recipe.lr": lr, "seed": seed}
        record = make_record(
            overrides=overrides, status="ok", metrics={"val/pearson": val, "test/pearson": test}, run_dir=sweep
        )
        append_record(sweep / "ledger.jsonl", {**record, "attempt": attempt, "lr": lr})


def test_select_lr_chooses_by_validation_never_by_test(tmp_path: Path) -> None:
    """The test metric favours 0.005; the validation metric favours 0.001, which must be the one kept."""
    from src.sweep.summarize import main, summarize

    _ledger(
        tmp_path,
        [(0.001, 1, 0.6, 0.1, 1), (0.001, 2, 0.62, 0.12, 2), (0.005, 1, 0.5, 0.9, 1), (0.005, 2, 0.52, 0.9, 1)],
    )
    result = summarize(tmp_path, metric="test/pearson", select_peak=True)
    [row] = result["rows"]
    assert row["recipe.lr"] == 0.001 and row["n_seeds"] == 2 and row["test/pearson_mean"] == pytest.approx(0.11)
    assert "(1 retried)" in row["status"] and row["retried"] == 1
    assert "selected per configuration" in result["markdown"] and "`val/pearson`" in result["markdown"]
    assert "selected per configuration" in (tmp_path / "effects.md").read_text()
    assert main([str(tmp_path), "--metric", "test/pearson"]) == 0  # without --select-lr both peaks are rows
    assert "swept as an axis" in (tmp_path / "leaderboard.md").read_text()
