"""Resumable sweeps: Hydra multirun jobs with the ledger, W&B grouping, the summary, launcher and trainer configs.

The end-to-end tests run ``train.py -m`` as a subprocess on a copy of ``conf/`` whose autosome and
resnet blocks are shrunk (a few hundred parameters), so eight combinations train in seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.errors import CompositionError, ConfigError, DivergedError
from src.sweep.callback import SummarizeCallback
from src.sweep.identity import NON_IDENTITY_KEYS, identity_overrides, in_multirun
from src.sweep.job import run_ledgered
from src.sweep.launch import check_launch, global_rank
from src.sweep.ledger import LEDGER_NAME, TORN_SUFFIX, append_record, job_key, make_record, read_ledger
from src.utils.naming import MAX_DIRNAME, safe_dirname
from tests.helpers import CONF_DIR, ROOT, SWEEP_RUN, compose_cfg, make_ctx, read_wandb_records, run_sweep, small_cfg

BLOCKS = ("autosome", "resnet")
EIGHT = ["first=autosome,resnet", "core=autosome,resnet", "final=autosome,resnet"]


# ----------------------------------------------------------------------------- helpers


def statuses(records: list[dict]) -> list[str]:
    return sorted(r["status"] for r in records)


@pytest.fixture(scope="module")
def eight_jobs(tiny_conf, tmp_path_factory):
    """One sweep of the 2 x 2 x 2 combinations (CSV logger); returns (sweep dir, process, seconds)."""
    sweep_dir = tmp_path_factory.mktemp("sweeps") / "eight"
    started = time.time()
    proc = run_sweep(tiny_conf, sweep_dir, *EIGHT, "logger=csv")
    return sweep_dir, proc, time.time() - started


def copy_sweep(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- end to end


def test_sweep_runs_every_combination_and_writes_the_summary(eight_jobs):
    sweep_dir, proc, _ = eight_jobs
    records = read_ledger(sweep_dir / LEDGER_NAME)
    assert statuses(records) == ["ok"] * 8
    combos = {(r["combination"]["first"], r["combination"]["core"], r["combination"]["final"]) for r in records}
    assert combos == set(product(BLOCKS, BLOCKS, BLOCKS))
    assert len({r["key"] for r in records}) == 8
    for record in records:
        assert -1.0 <= record["metrics"]["val/pearson"] <= 1.0  # from trainer.callback_metrics
        assert {"val/spearman", "val/mse", "val/loss"} <= set(record["metrics"])
        assert record["params"] > 0 and record["seconds"] > 0 and record["peak_memory_mb"] > 0
        assert record["error"] is None
        # non-identity overrides stay out of the key; first/core/final and the rest are in it
        assert "enable_progress_bar" not in record["key"] and "logger" not in record["key"]
        assert "data.source.n=400" in record["key"] and "first=" in record["key"]
        run_dir = Path(record["run_dir"])
        combo = record["combination"]
        assert run_dir.parent == sweep_dir / f"{combo['first']}-{combo['core']}-{combo['final']}"
        summary = json.loads((run_dir / "metrics.json").read_text())
        assert summary["metrics"]["val/pearson"] == pytest.approx(record["metrics"]["val/pearson"])
    # the summary callback ran at the end of the multirun
    for name in ("leaderboard.md", "leaderboard.csv", "heatmap_val_pearson.png"):
        assert (sweep_dir / name).stat().st_size > 0, name
    board = (sweep_dir / "leaderboard.md").read_text()
    assert "8 configurations ranked, 0 without any successful run" in board
    assert "| 1 |" in proc.stdout  # the leaderboard is printed too


def test_running_the_same_command_again_skips_every_finished_job(eight_jobs, tiny_conf, tmp_path):
    source, _, _ = eight_jobs
    sweep_dir = copy_sweep(source, tmp_path / "eight")
    before = read_ledger(sweep_dir / LEDGER_NAME)
    copies = [sweep_dir / Path(r["run_dir"]).relative_to(source) / "metrics.json" for r in before]
    written = {path: path.stat().st_mtime_ns for path in copies}
    proc = run_sweep(tiny_conf, sweep_dir, *EIGHT, "logger=csv")
    assert read_ledger(sweep_dir / LEDGER_NAME) == before  # nothing appended
    assert proc.stdout.count("skip ") == 8
    assert "Trainer.fit" not in proc.stdout  # no job trained
    assert written == {path: path.stat().st_mtime_ns for path in copies}


def test_sweep_rerun_true_runs_finished_jobs_again(eight_jobs, tiny_conf, tmp_path):
    source, _, _ = eight_jobs
    sweep_dir = copy_sweep(source, tmp_path / "eight")
    before = read_ledger(sweep_dir / LEDGER_NAME)
    proc = run_sweep(
        tiny_conf, sweep_dir, "first=autosome", "core=resnet", "final=autosome,resnet", "logger=csv", "sweep.rerun=true"
    )
    assert "skip " not in proc.stdout
    after = read_ledger(sweep_dir / LEDGER_NAME)
    assert len(after) == 10
    new = after[8:]
    assert statuses(new) == ["ok", "ok"]
    old_keys = {r["key"] for r in before}
    assert {r["key"] for r in new} <= old_keys  # the same jobs (sweep.rerun is not part of the identity)
    assert all(r["combination"]["first"] == "autosome" and r["combination"]["core"] == "resnet" for r in new)


def test_failures_are_recorded_and_the_sweep_goes_on_with_wandb_runs(tiny_conf, tmp_path):
    # first.block.out_channels=0 cannot be composed (rejected); weight_decay=-1 fails in the optimizer (failed);
    # recipe.lr=1e30 makes the loss inf within two steps (diverged)
    sweep_dir = tmp_path / "study_a"
    proc = run_sweep(
        tiny_conf,
        sweep_dir,
        "first=resnet",
        "core=resnet",
        "final=resnet",
        "first.block.out_channels=0,8",
        "recipe.lr=0.005,1e30",
        "recipe.optimizer.weight_decay=-1,0.01",
        status=1,  # a job failed (and one diverged): the launch exits 1 after running every job
    )
    assert proc.stdout.strip().splitlines()[-1] == (
        "8 jobs: 1 ok, 2 failed, 4 rejected, 1 diverged; "
        f"incomplete: 7 of 8 did not train (the error of each is in {sweep_dir / LEDGER_NAME})"
    )
    records = read_ledger(sweep_dir / LEDGER_NAME)
    assert statuses(records) == ["diverged", "failed", "failed", "ok", "rejected", "rejected", "rejected", "rejected"]
    by_status = {r["status"]: r for r in records}
    assert by_status["rejected"]["error"].startswith("CompositionError: first block 'resnet'")
    assert by_status["failed"]["error"] == "ValueError: Invalid weight_decay value: -1"
    assert "\n" not in by_status["failed"]["error"]
    assert by_status["diverged"]["error"].startswith("DivergedError: training diverged: training loss became NaN/inf")
    assert by_status["diverged"]["params"] == by_status["ok"]["params"]  # from the metrics.json it wrote
    for status in ("rejected", "failed", "diverged"):
        log = (Path(by_status[status]["run_dir"]) / "error.log").read_text()
        assert "Traceback (most recent call last)" in log and f"status: {status}" in log
    assert "Failed, collapsed, rejected or diverged" in (sweep_dir / "leaderboard.md").read_text()
    assert "rejected core=resnet" in proc.stdout

    # the ok job's offline W&B run: grouped by the sweep folder, tagged, full config, logged metrics
    ok = by_status["ok"]
    runs = list(Path(ok["run_dir"]).glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    records = read_wandb_records(runs[0])
    kinds = [r.WhichOneof("record_type") for r in records]
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.run_group == "study_a"
    assert {"first=resnet", "core=resnet", "final=resnet", "processing=onehot"} <= set(run.tags)
    config_keys = {item.key for r in records if r.WhichOneof("record_type") == "config" for item in r.config.update}
    assert {"first", "core", "final", "trainer", "recipe", "sweep"} <= config_keys
    history = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            history.update(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            )
    assert history["val/pearson"] == pytest.approx(ok["metrics"]["val/pearson"])
    assert "exit" in kinds  # wandb.finish() ran after the job


def test_joblib_launcher_runs_jobs_in_parallel_workers(tiny_conf, tmp_path):
    sweep_dir = tmp_path / "parallel"
    proc = run_sweep(
        tiny_conf,
        sweep_dir,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "first=autosome",
        "core=autosome",
        "final=autosome,resnet",
        "logger=csv",
    )
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout
    records = read_ledger(sweep_dir / LEDGER_NAME)
    assert statuses(records) == ["ok", "ok"]
    assert {r["combination"]["final"] for r in records} == {"autosome", "resnet"}
    assert (sweep_dir / "leaderboard.md").exists()  # written by the parent when both workers are done
    assert "validated against ConfigStore schema" not in proc.stdout


def test_dry_run_multirun_composes_and_records_nothing(tiny_conf, tmp_path):
    sweep_dir = tmp_path / "dry"
    proc = run_sweep(tiny_conf, sweep_dir, "dry_run=true", "first=resnet", "first.block.out_channels=0,8", *EIGHT[1:])
    assert proc.stdout.count("params: ") == 4  # the 4 combinations that compose
    assert proc.stdout.count("rejected ") == 4  # the others are reported, and the sweep goes on
    assert not (sweep_dir / LEDGER_NAME).exists()
    assert not (sweep_dir / "leaderboard.md").exists()


@pytest.mark.slow
def test_full_cross_product_composes_in_a_dry_run(tmp_path):
    """Every first x core x final of the real configs: each one composes or is reported as rejected."""
    sweep_dir = tmp_path / "all"
    groups = {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")) for g in ("first", "core", "final")}
    n = len(groups["first"]) * len(groups["core"]) * len(groups["final"])
    # 8 x 8 x 8 = 512 full-size compositions: about 400 s of composing alone on one loaded CPU core
    proc = run_sweep(None, sweep_dir, "dry_run=true", "first=glob(*)", "core=glob(*)", "final=glob(*)", timeout=1800)
    composed = proc.stdout.count("params: ")
    rejected = proc.stdout.count("rejected ")
    assert composed + rejected == n, proc.stdout[-3000:]
    assert rejected == 0, proc.stdout[-3000:]  # the whole menu composes under the default (autosome) processing
    assert not (sweep_dir / LEDGER_NAME).exists()


# ----------------------------------------------------------------------------- the job wrapper in-process


def test_run_ledgered_records_ok_with_metrics_params_and_memory(tmp_path):
    ctx = make_ctx(tmp_path)
    cfg = small_cfg()
    summary = {"metrics": {"val/pearson": 0.5}, "params": 123, "monitor": "val/pearson", "best_score": 0.6}
    assert run_ledgered(lambda c: summary, cfg, ctx) is summary
    (record,) = read_ledger(ctx.ledger)
    assert record["status"] == "ok" and record["key"] == "core=bhi,final=resnet,first=autosome,seed=1"
    assert record["metrics"] == {"val/pearson": 0.5, "val/pearson_best": 0.6}
    assert record["params"] == 123 and record["peak_memory_mb"] > 0
    assert record["run_dir"] == str(ctx.job_dir)
    assert cfg.logger.wandb.group == "sweep"  # W&B runs are grouped by the sweep folder


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (CompositionError("core block 'x' cannot take input (channels=4, seq_len=1)\nmore"), "rejected"),
        (DivergedError("training loss became NaN/inf at epoch 0, step 3"), "diverged"),
        (ConfigError("recipe: unknown optimizer"), "failed"),
        (RuntimeError("CUDA out of memory.\nTried to allocate"), "failed"),
    ],
)
def test_run_ledgered_records_each_failure_and_does_not_raise(tmp_path, error, status):
    ctx = make_ctx(tmp_path)

    def task(cfg):
        raise error

    assert run_ledgered(task, small_cfg(), ctx) is None
    (record,) = read_ledger(ctx.ledger)
    assert record["status"] == status
    first_line = str(error).splitlines()[0]
    assert record["error"] == f"{type(error).__name__}: {first_line}"
    assert record["metrics"] == {} and record["params"] is None
    log = (ctx.job_dir / "error.log").read_text()
    assert "Traceback" in log and type(error).__name__ in log


def test_run_ledgered_skips_ok_jobs_unless_rerun(tmp_path):
    ctx = make_ctx(tmp_path)
    calls = []

    def task(cfg):
        calls.append(1)
        return {"metrics": {"val/pearson": 0.1}, "params": 1}

    run_ledgered(task, small_cfg(), ctx)
    skipped = run_ledgered(task, small_cfg(), ctx)
    assert skipped["status"] == "skipped" and skipped["metrics"] == {"val/pearson": 0.1}
    assert len(calls) == 1 and len(read_ledger(ctx.ledger)) == 1
    run_ledgered(task, small_cfg(), make_ctx(tmp_path, rerun=True))
    assert len(calls) == 2 and len(read_ledger(ctx.ledger)) == 2


def test_run_ledgered_retries_jobs_whose_latest_record_is_not_ok(tmp_path):
    ctx = make_ctx(tmp_path)
    append_record(ctx.ledger, make_record(overrides=ctx.overrides, status="ok", metrics={"val/pearson": 0.2}))
    append_record(ctx.ledger, make_record(overrides=ctx.overrides, status="failed", error="x"))
    calls = []
    run_ledgered(lambda cfg: calls.append(1) or {"metrics": {}}, small_cfg(), ctx)
    assert calls == [1]
    assert [r["status"] for r in read_ledger(ctx.ledger)] == ["ok", "failed", "ok"]


def test_dry_run_jobs_append_nothing_and_interrupts_propagate(tmp_path):
    ctx = make_ctx(tmp_path)
    assert run_ledgered(lambda cfg: {"params": 5}, small_cfg(dry_run=True), ctx) == {"params": 5}

    def rejected(cfg):
        raise CompositionError("nope")

    assert run_ledgered(rejected, small_cfg(dry_run=True), ctx) is None
    assert not ctx.ledger.exists()

    def interrupted(cfg):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ledgered(interrupted, small_cfg(), ctx)
    assert not ctx.ledger.exists()  # an interrupted job is simply run again next time


def test_only_rank_zero_writes_the_ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    ctx = make_ctx(tmp_path)
    run_ledgered(lambda cfg: {"metrics": {"val/pearson": 0.3}}, small_cfg(), ctx)

    def failing(cfg):
        raise RuntimeError("boom")

    run_ledgered(failing, small_cfg(), ctx)
    assert not ctx.ledger.exists()
    monkeypatch.setenv("RANK", "0")
    run_ledgered(lambda cfg: {"metrics": {"val/pearson": 0.3}}, small_cfg(), ctx)
    assert len(read_ledger(ctx.ledger)) == 1


def test_identity_overrides_leave_out_non_identity_keys():
    task = [
        "first=autosome",
        "++core.block.hidden=64",
        "seed=2",
        "recipe.lr=0.01",
        "dry_run=false",
        "sweep.rerun=true",
        "sweep.name=x",
        "logger=csv",
        "logger.wandb.mode=online",
        "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=1",
        "data.widths=[1, 2]",
        "resume=true",
    ]
    choices = {"first": "autosome", "core": "bhi", "final": "resnet", "hydra/launcher": "basic"}
    got = identity_overrides(task, exclude=["resume"], choices=choices)
    assert got == {
        "first": "autosome",
        "core.block.hidden": 64,
        "seed": 2,
        "recipe.lr": 0.01,
        "trainer.limit_val_batches": 1,
        "data.widths": [1, 2],
        "core": "bhi",
        "final": "resnet",
    }
    # the same job whatever the spelling of the overrides
    again = identity_overrides(
        [
            "core.block.hidden=64",
            "recipe.lr=0.01",
            "seed=2",
            "first=autosome",
            "trainer.limit_val_batches=1",
            "data.widths=[1,2]",
        ],
        choices=choices,
    )
    assert job_key(again) == job_key(got)


def test_safe_dirname_is_stable_short_and_flat():
    assert safe_dirname("") == "default"
    assert safe_dirname("seed=1") == "seed=1"
    assert safe_dirname("data.path=/a/b") == "data.path=%2Fa%2Fb"
    long_a = ",".join(f"recipe.key{i}={i}" for i in range(40))
    long_b = long_a + ",x=1"
    name_a, name_b = safe_dirname(long_a), safe_dirname(long_b)
    assert len(name_a.encode()) <= MAX_DIRNAME and len(name_b.encode()) <= MAX_DIRNAME
    assert name_a != name_b and name_a == safe_dirname(long_a)
    assert "/" not in name_a


def test_check_launch_refuses_relaunching_ddp_in_a_local_sweep(monkeypatch):
    for var in ("LOCAL_RANK", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    ddp = OmegaConf.create({"trainer": {"strategy": "ddp", "accelerator": "cpu", "devices": 2}})
    with pytest.raises(ConfigError, match="ddp_spawn"):
        check_launch(ddp)
    check_launch(OmegaConf.create({"trainer": {"strategy": "ddp_spawn", "accelerator": "cpu", "devices": 2}}))
    check_launch(OmegaConf.create({"trainer": {"strategy": "ddp", "accelerator": "cpu", "devices": 1}}))
    check_launch(OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 1}}))
    monkeypatch.setenv("SLURM_NTASKS", "2")  # SLURM starts one task per device: fine
    check_launch(ddp)


def test_summarize_callback_never_fails_the_sweep(tmp_path, caplog):
    callback = SummarizeCallback()
    config = OmegaConf.create({"dry_run": False, "hydra": {"sweep": {"dir": str(tmp_path)}}})
    callback.on_multirun_end(config)  # no ledger: nothing to do
    (tmp_path / LEDGER_NAME).write_text('garbage\n{"key": 1}\n')  # a corrupt first line
    callback.on_multirun_end(config)
    assert "sweep summary failed" in caplog.text
    (tmp_path / LEDGER_NAME).unlink()
    append_record(
        tmp_path / LEDGER_NAME,
        make_record(overrides={"first": "a", "core": "b", "final": "c"}, status="ok", metrics={"val/pearson": 0.4}),
    )
    callback.on_multirun_end(config)
    assert (tmp_path / "leaderboard.md").exists() and (tmp_path / "leaderboard.csv").exists()
    SummarizeCallback(enabled=False).on_multirun_end(OmegaConf.create({}))


def test_outside_hydra_run_task_is_not_in_multirun():
    assert in_multirun() is False
    assert global_rank() >= 0


# ----------------------------------------------------------------------------- configs


def compose_with_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def test_sweep_folder_defaults_to_the_date_and_follows_sweep_name():
    cfg = compose_with_hydra([])
    assert cfg.hydra.sweep.dir == f"multirun/{time.strftime('%Y-%m-%d')}"
    assert cfg.sweep.rerun is False
    cfg = compose_with_hydra(["sweep.name=my_study"])
    assert cfg.hydra.sweep.dir == "multirun/my_study"
    assert cfg.hydra.callbacks.summarize._target_ == "src.sweep.callback.SummarizeCallback"
    assert (cfg.hydra.callbacks.summarize.metric, cfg.hydra.callbacks.summarize.mode) == ("val/pearson", "max")
    follows = compose_with_hydra(["monitor.metric=val/mse", "monitor.mode=min"]).hydra.callbacks.summarize
    assert (follows.metric, follows.mode) == ("val/mse", "min")
    excluded = set(cfg.hydra.job.config.override_dirname.exclude_keys)
    assert (set(NON_IDENTITY_KEYS) | {"first", "core", "final"}) == excluded


@pytest.mark.filterwarnings(r"ignore:\s*'hydra/launcher/\S+' is validated against ConfigStore schema")
def test_launcher_configs_compose():
    cfg = compose_with_hydra(["hydra/launcher=joblib", "hydra.launcher.n_jobs=4"])
    assert cfg.hydra.launcher.n_jobs == 4
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    cfg = compose_with_hydra(["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu"])
    assert cfg.hydra.launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu"
    assert compose_with_hydra([]).hydra.launcher._target_.endswith("BasicLauncher")


def test_trainer_configs_for_ddp_and_tpu():
    ddp = compose_cfg(["trainer=ddp", "trainer.devices=4"])
    assert ddp.trainer.strategy == "ddp" and ddp.trainer.devices == 4 and ddp.trainer.accelerator == "auto"
    assert ddp.trainer.use_distributed_sampler is False
    tpu = compose_cfg(["trainer=tpu"])
    assert tpu.trainer.accelerator == "tpu" and tpu.trainer.precision == "bf16-true"
    assert tpu.trainer.devices == "auto" and tpu.trainer.use_distributed_sampler is False
    assert tpu.trainer._target_ == "lightning.Trainer"
    assert tpu.nan_check_every == 100  # the NaN check syncs with the host: not every step on XLA
    assert compose_cfg(["trainer=tpu", "nan_check_every=5"]).nan_check_every == 5
    assert compose_cfg([]).nan_check_every == 100  # the default reads the on-device flag every 100 steps


def test_a_sweep_killed_mid_way_resumes_without_redoing_finished_jobs(tiny_conf, tmp_path):
    """SIGKILL the whole sweep after its first records, rerun the command: finished jobs are skipped,
    the ledger holds only whole records, and every combination ends up ok exactly once."""
    import signal

    sweep_dir = tmp_path / "killed"
    ledger = sweep_dir / LEDGER_NAME
    cmd = [sys.executable, "train.py", "-cp", str(tiny_conf), "-m", f"hydra.sweep.dir={sweep_dir}", *SWEEP_RUN]
    cmd += [*EIGHT, "logger=csv"]
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 150
    while time.time() < deadline and proc.poll() is None:
        if ledger.exists() and len(read_ledger(ledger)) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_ledger(ledger)
    assert 2 <= len(before) < 8, "the sweep should be killed part-way"

    second = run_sweep(tiny_conf, sweep_dir, *EIGHT, "logger=csv")
    after = read_ledger(ledger)
    finished_first = {r["key"] for r in before if r["status"] == "ok"}
    # nothing finished before the kill was trained again
    assert after[: len(before)] == before
    assert not finished_first & {r["key"] for r in after[len(before) :]}
    assert sorted(r["status"] for r in after) == ["ok"] * 8
    assert second.stdout.count("skip") >= len(finished_first)
    # every line of the file is a whole JSON record (a record torn by a kill would carry the torn marker)
    for line in ledger.read_text().splitlines():
        assert line.endswith(TORN_SUFFIX) or json.loads(line)["key"]


def test_ddp_on_two_cpu_processes_trains_and_validates(tmp_path):
    """trainer=ddp with 2 CPU processes: ranks shard batches, run equal validation batches, agree on metrics."""
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, "train.py", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    cmd += ["first.block.out_channels=8", "core.block.stage_widths=[8,8]", "data.source.n=300", "recipe.epochs=2"]
    cmd += ["recipe.batch_size=16", "logger=csv", "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}"]
    env = dict(os.environ, WANDB_MODE="offline", OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["epochs"] == 2
    # 270 train reads x 2 strands / 16 per batch = 33 batches, shared by 2 ranks -> 16 steps per epoch
    assert metrics["global_step"] == 32
    assert -1.0 <= metrics["metrics"]["val/pearson"] <= 1.0


def test_two_launches_of_one_sweep_run_every_job_once(tiny_conf, tmp_path):
    """Two real launches of the same sweep at once: one record and one checkpoint per job, no -v1.ckpt."""
    sweep_dir = tmp_path / "twice"
    cmd = [sys.executable, "train.py", "-m", "-cp", str(tiny_conf), f"hydra.sweep.dir={sweep_dir}", *SWEEP_RUN]
    cmd += ["first=resnet", "core=resnet", "final=resnet", "seed=0,1,2", "logger=csv"]
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    launches = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in launches]
    assert [p.returncode for p in launches] == [0, 0], outputs
    records = read_ledger(sweep_dir / LEDGER_NAME)
    assert sorted(r["overrides"]["seed"] for r in records) == [0, 1, 2], records  # one record per job
    assert statuses(records) == ["ok", "ok", "ok"]
    for record in records:
        names = sorted(p.name for p in (Path(record["run_dir"]) / "checkpoints").iterdir())
        assert len(names) == 2 and names[0].startswith("best-") and names[1] == "last.ckpt", names  # no -v1
    assert not list((sweep_dir / "claims").iterdir())  # every claim released
    lines = [out.strip().splitlines()[-1] for out in outputs]
    # "N ok" counts the jobs this launch trained; "skipped (already ok)" ones were trained by the other
    ran = [sum(int(n) for n in re.findall(r"(?:: |, )(\d+) ok(?=,|$)", line)) for line in lines]
    assert sum(ran) == 3 and all(line.startswith("3 jobs: ") for line in lines), lines


def test_launch_exit_status_counts_failures_and_all_rejected(tmp_path: Path) -> None:
    """A launch fails when a job failed or diverged, or when every job was rejected (nothing trained)."""
    from src.sweep.outcomes import LAUNCHES_DIR, launch_summary

    def summary(outcomes: list[str]) -> tuple[str, int]:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        (folder / LAUNCHES_DIR).mkdir(parents=True)
        lines = [json.dumps({"key": f"job{i}", "outcome": o}) for i, o in enumerate(outcomes)]
        (folder / LAUNCHES_DIR / "l.jsonl").write_text("\n".join(lines) + "\n")
        return launch_summary(folder, "l")

    path = tmp_path / str(len(list(tmp_path.iterdir()))) / "ledger.jsonl"  # of the folder summary() makes next
    # a mix of ok and rejected jobs: status 0, and the closing line says that the sweep is incomplete
    assert summary(["ok", "rejected"]) == (
        f"2 jobs: 1 ok, 1 rejected; incomplete: 1 of 2 did not train (the error of each is in {path})",
        0,
    )
    assert summary(["ok", "ok"]) == ("2 jobs: 2 ok", 0)
    assert summary(["rejected", "rejected"])[1] == 1
    assert summary(["ok", "diverged"])[1] == 1 and summary(["skipped"]) == ("1 job: 1 skipped (already ok)", 0)
