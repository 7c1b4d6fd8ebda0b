"""Successive halving over a sweep: the promotion rule, promoted runs, the rung bookkeeping, resume, reports, bad input.

The end-to-end tests run ``train.py -m`` with ``sweep.halving`` on a copy of ``conf/`` whose autosome and
resnet blocks are shrunk (a few hundred parameters): two configurations x two seeds, eta 4, two rungs
of 1 and 4 epochs of 2 steps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.errors import ConfigError
from src.sweep.halving import config_scores, halving_plan, promote, rung_budget
from src.sweep.halving_sweep import check_plan, record_config
from src.sweep.ledger import LEDGER_NAME, make_record, read_ledger
from tests.helpers import FAST, ROOT, SWEEP_RUN, TINY_AUTOSOME, compose_cfg

# two configurations (core autosome or resnet) x two seeds; rung 0: 1 epoch, rung 1: 4 epochs
HALVING = [
    *(o for o in SWEEP_RUN if not o.startswith("recipe.epochs=")),
    "recipe.epochs=4",
    "logger=csv",
    "first=autosome",
    "core=autosome,resnet",
    "final=autosome",
    "seed=0,1",
    "sweep.halving.eta=4",
    "sweep.halving.rungs=2",
    "sweep.halving.poll_s=0.2",
]


def halving_cmd(conf: Path, sweep_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "train.py", "-m", "-cp", str(conf), f"hydra.sweep.dir={sweep_dir}", *HALVING, *extra]


ENV = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")


def trained(records: list[dict], rung: int) -> list[dict]:
    """The records of jobs that trained at ``rung`` (not the pruned decisions)."""
    return [r for r in records if r.get("rung") == rung and r["status"] != "pruned"]


# ----------------------------------------------------------------------------- the rule and the budgets


def _record(core: str, seed: int, val: float, test: float, status: str = "ok") -> dict:
    overrides = {"first": "autosome", "core": core, "final": "autosome", "seed": seed}
    return make_record(overrides=overrides, status=status, metrics={"val/pearson": val, "test/pearson": test})


def test_promotion_takes_the_top_by_validation_mean_over_seeds_never_test_and_breaks_ties_by_key():
    records = [
        _record("a", 0, 0.50, 0.1),
        _record("a", 1, 0.30, 0.1),  # mean 0.40
        _record("b", 0, 0.40, 0.9),  # best on test, tied with a on validation
        _record("b", 1, 0.40, 0.9),
        _record("c", 0, 0.10, 0.9),
        _record("c", 1, 0.20, 0.9),
        _record("d", 0, 0.90, 0.0, status="failed"),  # a failed seed does not count
        _record("d", 1, 0.35, 0.0),
    ]
    scores = config_scores(records, record_config, "val/pearson")
    assert len(scores) == 4
    by_core = {key.split("core=")[1].split(",")[0]: s for key, s in scores.items()}
    assert by_core == pytest.approx({"a": 0.40, "b": 0.40, "c": 0.15, "d": 0.35})
    kept = promote(scores, eta=2, higher=True)
    assert [k.split("core=")[1].split(",")[0] for k in kept] == ["a", "b"]  # tie 0.40: key order a < b
    assert promote(scores, eta=2, higher=True) == promote(dict(reversed(list(scores.items()))), eta=2, higher=True)
    assert [k.split("core=")[1].split(",")[0] for k in promote(scores, eta=2, higher=False)] == ["c", "d"]
    assert len(promote(scores, eta=8, higher=True)) == 1  # at least one goes on
    unscored = {**scores, "core=e": None}
    assert "core=e" not in promote(unscored, eta=1, higher=True)
    # the best-epoch value (which picked the checkpoint) is what ranks when recorded
    best = [{**_record("a", 0, 0.1, 0.0), "metrics": {"val/pearson": 0.1, "val/pearson_best": 0.6}}]
    assert list(config_scores(best, record_config, "val/pearson").values()) == [0.6]


def test_rung_budgets_end_at_the_recipe_budget():
    assert [rung_budget(80, 3, 4, r) for r in range(4)] == [3, 9, 27, 80]
    assert [rung_budget(4, 4, 2, r) for r in range(2)] == [1, 4]
    assert [rung_budget(18, 3, 3, r) for r in range(3)] == [2, 6, 18]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["sweep.halving.eta=1", "sweep.halving.rungs=3"], "sweep.halving.eta=1"),
        (["sweep.halving.eta=3", "sweep.halving.rungs=1"], "sweep.halving.rungs=1"),
        (["sweep.halving.eta=3"], "sweep.halving.rungs is not set"),
        (["sweep.halving.eta=3", "sweep.halving.rungs=3", "recipe.epochs=8"], "sweep.halving.rungs=3"),
        (["sweep.halving.eta=2", "sweep.halving.rungs=2", "trainer.max_steps=5"], "trainer.max_steps=5"),
        (["sweep.halving.eta=2.5", "sweep.halving.rungs=2"], "sweep.halving.eta=2.5"),
    ],
)
def test_bad_halving_settings_are_one_line_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        halving_plan(compose_cfg(overrides))
    assert key in str(err.value) and "\n" not in str(err.value)


def test_rung_zero_shorter_than_one_validation_interval_is_refused():
    cfg = compose_cfg(["sweep.halving.eta=2", "sweep.halving.rungs=2", "recipe.epochs=4"])
    assert halving_plan(cfg).budgets() == [2, 4]
    every_3 = compose_cfg(
        ["sweep.halving.eta=2", "sweep.halving.rungs=2", "recipe.epochs=4", "trainer.check_val_every_n_epoch=3"]
    )
    with pytest.raises(ConfigError, match=r"sweep.halving.rungs=2: .* less than one validation interval \(3 epochs\)"):
        halving_plan(every_3)
    assert halving_plan(compose_cfg([])) is None  # no halving asked for


def test_a_resumed_halving_sweep_with_another_eta_or_rungs_is_refused(tmp_path):
    plan = halving_plan(compose_cfg(["sweep.halving.eta=3", "sweep.halving.rungs=2", "recipe.epochs=9"]))
    check_plan(tmp_path, plan)
    check_plan(tmp_path, plan)  # the same plan resumes
    other = halving_plan(compose_cfg(["sweep.halving.eta=2", "sweep.halving.rungs=2", "recipe.epochs=9"]))
    with pytest.raises(ConfigError, match=r"sweep.halving.eta=2 differs from eta=3"):
        check_plan(tmp_path, other)


# ----------------------------------------------------------------------------- a promoted run


def test_a_promoted_run_is_the_same_run_as_an_unpruned_one_of_the_same_budget(tmp_path):
    """Rung 0 (1 of 3 epochs, schedule of 3) then rung 1 from its checkpoint == one run of 3 epochs."""
    from src.train_task import train

    base = [*FAST, *TINY_AUTOSOME, "recipe.epochs=3", "recipe.steps_per_epoch=3"]
    halving = ["sweep.halving.eta=3", "sweep.halving.rungs=2"]
    promoted_dir, plain_dir = tmp_path / "promoted", tmp_path / "plain"
    rung0 = train(compose_cfg([*base, *halving, "sweep.halving.rung=0"], run_dir=promoted_dir))
    assert rung0["epochs"] == 1 and rung0["global_step"] == 3  # stopped at the rung's budget
    info = json.loads((promoted_dir / "halving_rung.json").read_text())
    assert info == {"rung": 0, "budget_epochs": 1, "steps": 3, "full_steps": 9}  # the schedule spans 9 steps
    promoted = train(compose_cfg([*base, *halving, "sweep.halving.rung=1"], run_dir=promoted_dir))
    plain = train(compose_cfg(base, run_dir=plain_dir))
    assert promoted["global_step"] == plain["global_step"] == 9
    assert promoted["metrics"] == pytest.approx(plain["metrics"], rel=1e-6, abs=1e-7)
    assert promoted["best_score"] == pytest.approx(plain["best_score"], rel=1e-6, abs=1e-7)


# ----------------------------------------------------------------------------- a halving sweep, killed and resumed


@pytest.fixture(scope="module")
def resumed_sweep(tiny_conf, tmp_path_factory):
    """A halving sweep SIGKILLed once rung 0 is decided, then the same command again.

    Returns (sweep dir, ledger records before the kill, rung-0 decision before the kill, second process).
    """
    sweep_dir = tmp_path_factory.mktemp("halving") / "sweep"
    decision = sweep_dir / "halving" / "rung-0.json"
    proc = subprocess.Popen(
        halving_cmd(tiny_conf, sweep_dir),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 200
    while time.time() < deadline and proc.poll() is None and not decision.exists():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert decision.exists(), "the sweep should be killed after rung 0 was decided"
    before = read_ledger(sweep_dir / LEDGER_NAME)
    first_decision = decision.read_text()
    second = subprocess.run(
        halving_cmd(tiny_conf, sweep_dir),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stdout[-4000:]
    return sweep_dir, before, first_decision, second


def test_a_killed_halving_sweep_resumes_without_retraining_a_finished_rung(resumed_sweep):
    sweep_dir, before, first_decision, second = resumed_sweep
    after = read_ledger(sweep_dir / LEDGER_NAME)
    assert after[: len(before)] == before  # nothing recorded was lost or rewritten
    assert len(trained(before, 0)) == 4 and not trained(after[len(before) :], 0)  # rung 0 never trained again
    assert (sweep_dir / "halving" / "rung-0.json").read_text() == first_decision  # the decision was not remade
    done_before = {r["key"] for r in trained(before, 1)}
    assert not done_before & {r["key"] for r in trained(after[len(before) :], 1)}
    rung1 = trained(after, 1)
    assert len(rung1) == 2 and {r["status"] for r in rung1} == {"ok"}  # the promoted configuration's two seeds
    assert len({r["key"] for r in rung1}) == 2
    # every pruned job has its record, even when the kill came between the decision and those records
    assert len([r for r in after if r["status"] == "pruned"]) == 2
    # the rerun launched only the rung-1 jobs without a record (and recorded the pruned jobs the kill left out)
    left, repaired = 2 - len(done_before), len([r for r in after[len(before) :] if r["status"] == "pruned"])
    expected = [f"{left} ok"] + ([f"{repaired} pruned"] if repaired else [])
    line = second.stdout.strip().splitlines()[-1]
    assert line == f"{left + repaired} job{'s' if left + repaired != 1 else ''}: {', '.join(expected)}"


def test_halving_records_carry_rung_budget_and_pruned_jobs_their_score(resumed_sweep):
    sweep_dir, _, _, _ = resumed_sweep
    records = read_ledger(sweep_dir / LEDGER_NAME)
    decision = json.loads((sweep_dir / "halving" / "rung-0.json").read_text())
    assert decision["budget_epochs"] == 1 and decision["next_budget_epochs"] == 4
    scores = decision["scores"]
    assert len(scores) == 2 and len(decision["promoted"]) == 1
    assert decision["promoted"] == [max(scores, key=lambda c: (scores[c], c))]  # the top by validation
    for record in trained(records, 0):
        assert record["budget_epochs"] == 1 and record["steps"] == 2 and record["full_steps"] == 8
    for record in trained(records, 1):
        assert record["budget_epochs"] == 4 and record["steps"] == 8  # continued: 2 steps x 4 epochs in all
        assert record_config(record) == decision["promoted"][0]
        assert Path(record["run_dir"], "checkpoints", "last.ckpt").is_file()
    pruned = [r for r in records if r["status"] == "pruned"]
    assert len(pruned) == 2 and all(r["rung"] == 0 and r["budget_epochs"] == 1 for r in pruned)
    assert {record_config(r) for r in pruned} == set(scores) - set(decision["promoted"])
    assert all(r["score"] == pytest.approx(scores[record_config(r)]) for r in pruned)
    # the halving settings are not part of a job's identity: one key and one folder per job over the rungs
    assert all("halving" not in r["key"] for r in records)
    assert all("halving" not in str(Path(r["run_dir"]).relative_to(sweep_dir)) for r in records)
    assert len({r["key"] for r in records}) == 4 and len({r["run_dir"] for r in records}) == 4


def test_halving_summary_ranks_by_rung_marks_pruned_rows_and_counts_compute(resumed_sweep):
    from src.sweep.summarize import summarize

    sweep_dir, _, _, _ = resumed_sweep
    result = summarize(sweep_dir)
    rows = result["rows"]
    assert [r["rung"] for r in rows] == [1, 0] and [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["status"] == "2 ok at rung 1" and rows[1]["status"] == "2 pruned at rung 0"
    assert rows[1]["val/pearson_mean"] is not None  # a pruned row keeps the score that pruned it
    markdown = result["markdown"]
    assert "2 pruned at rung 0" in markdown and "## Successive halving" in markdown
    # 4 jobs x 2 steps at rung 0, 2 jobs x 6 more at rung 1 = 20 of the full grid's 4 x 8 = 32 steps
    assert "Compute spent: 20 optimizer steps of the 32 the full grid (4 jobs at the top budget)" in markdown
    assert "62.5 %" in markdown
    assert "effects of rung 0, 1 epoch, 4 jobs" in (sweep_dir / "effects.md").read_text()
    assert "Compute spent" in (sweep_dir / "leaderboard.md").read_text()


def test_bad_halving_input_exits_2_before_any_job_starts(tiny_conf, tmp_path):
    sweep_dir = tmp_path / "bad"
    proc = subprocess.run(
        halving_cmd(tiny_conf, sweep_dir, "sweep.halving.eta=1"),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: sweep.halving.eta=1 must be at least 2")
    assert not (sweep_dir / LEDGER_NAME).exists()
    # a halving sweep resumed with another eta: refused, naming both values, nothing trained
    (sweep_dir / "halving").mkdir(parents=True)
    (sweep_dir / "halving" / "plan.json").write_text(json.dumps({"eta": 3, "rungs": 2}))
    proc = subprocess.run(
        halving_cmd(tiny_conf, sweep_dir), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "sweep.halving.eta=4 differs from eta=3" in proc.stderr.strip().splitlines()[-1]
    assert not (sweep_dir / LEDGER_NAME).exists()


@pytest.mark.slow
def test_two_launches_of_one_halving_sweep_train_each_rung_of_each_job_once(tiny_conf, tmp_path):
    """Two launches of the same halving command at once share the rungs: one record per job and rung."""
    sweep_dir = tmp_path / "twice"
    launches = [
        subprocess.Popen(
            halving_cmd(tiny_conf, sweep_dir), cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=400)[0].decode() for p in launches]
    assert [p.returncode for p in launches] == [0, 0], [o[-3000:] for o in outputs]
    records = read_ledger(sweep_dir / LEDGER_NAME)
    for rung, jobs in ((0, 4), (1, 2)):
        keys = [r["key"] for r in trained(records, rung)]
        assert len(keys) == len(set(keys)) == jobs, keys  # every job of the rung trained once, by one launch
    pruned = [r["key"] for r in records if r["status"] == "pruned"]
    assert len(pruned) == len(set(pruned)) == 2  # one launch recorded the decision's pruned jobs
    assert not [p for p in (sweep_dir / "claims").iterdir() if p.suffix == ".claim"]  # every claim released
