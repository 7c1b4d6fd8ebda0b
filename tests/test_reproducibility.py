"""Reproducibility on CPU, checkpoints that load with ``weights_only=True``, and ``init_from``."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torchmetrics import PearsonCorrCoef

import src.train_task as train_task
from src.checkpoint import init_from_checkpoint
from src.entry import run_task
from src.errors import ConfigError
from src.lit_modules.prixfixe_module import PrixFixeModule
from src.train_task import build_datamodule, build_module, train
from tests.helpers import compose_cfg, tiny_dropout_run

# tiny, with dropout (first=bhi): 2 epochs of 11 steps
RUN = [*tiny_dropout_run(n=400, epochs=2), "trainer.num_sanity_val_steps=0"]


@pytest.fixture(scope="module")
def run_a(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    run_dir = tmp_path_factory.mktemp("a")
    return train(compose_cfg(RUN, run_dir=run_dir)), run_dir


def state(path: Path | str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


# ------------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_metrics_and_weights(tmp_path: Path, run_a: tuple[dict[str, Any], Path]) -> None:
    a, a_dir = run_a
    b = train(compose_cfg(RUN, run_dir=tmp_path))
    assert a["status"] == b["status"] == "ok"
    assert a["metrics"] == b["metrics"] and a["best_score"] == b["best_score"]
    sa, sb = state(a_dir / "checkpoints" / "last.ckpt"), state(tmp_path / "checkpoints" / "last.ckpt")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_another_seed_gives_other_metrics(tmp_path: Path, run_a: tuple[dict[str, Any], Path]) -> None:
    a, _ = run_a
    c = train(compose_cfg([*RUN, "seed=1"], run_dir=tmp_path))
    assert c["metrics"]["val/pearson"] != a["metrics"]["val/pearson"]
    assert c["metrics"]["val/mse"] != a["metrics"]["val/mse"]


# ------------------------------------------------------------------------------------------- checkpoints
def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def test_checkpoints_load_with_weights_only(run_a: tuple[dict[str, Any], Path]) -> None:
    summary, run_dir = run_a
    paths = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    assert {p.name for p in paths} >= {"last.ckpt", Path(summary["best_checkpoint"]).name}
    for path in paths:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert _plain(ckpt["hyper_parameters"]), ckpt["hyper_parameters"]  # no pickled callables
        assert ckpt["hyper_parameters"]["first"]["block"]["_target_"] == "src.blocks.bhi.BhiFirst"


@torch.no_grad()
def validation_predictions(module: PrixFixeModule, cfg: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation split's predictions exactly as ``validation_step`` makes them."""
    datamodule = build_datamodule(cfg, module)
    datamodule.setup("fit")
    module.eval()
    preds, targets = [], []
    for batch in datamodule.val_dataloader():
        pred = module.objective.predict(module.net(batch["x"], batch)[0])
        if module.processing.rc_average:
            pred = 0.5 * (pred + module(module.processing.reverse_complement(batch["x"])))
        preds.append(pred[:, 0])
        targets.append(batch["y"][:, 0])
    return torch.cat(preds), torch.cat(targets)


def test_load_from_checkpoint_rebuilds_the_trained_model(run_a: tuple[dict[str, Any], Path]) -> None:
    """The checkpoint alone rebuilds a model whose validation Pearson is the run's last one."""
    summary, run_dir = run_a
    last = run_dir / "checkpoints" / "last.ckpt"
    cfg = compose_cfg(RUN, run_dir=run_dir)
    loaded = PrixFixeModule.load_from_checkpoint(str(last), map_location="cpu")
    pred, y = validation_predictions(loaded, cfg)
    metric = PearsonCorrCoef()
    for start in range(0, len(y), 256):  # the metric's own batching: update per validation batch
        metric.update(pred[start : start + 256], y[start : start + 256])
    assert float(metric.compute()) == pytest.approx(summary["metrics"]["val/pearson"], abs=1e-6)
    # the same weights composed from the config give the same predictions, bit for bit
    rebuilt = build_module(cfg)
    rebuilt.load_state_dict(state(last))
    assert torch.equal(validation_predictions(rebuilt, cfg)[0], pred)


# ------------------------------------------------------------------------------------------------ init_from
def test_init_from_copies_every_matching_tensor(run_a: tuple[dict[str, Any], Path]) -> None:
    _, run_dir = run_a
    last = run_dir / "checkpoints" / "last.ckpt"
    torch.manual_seed(123)
    module = build_module(compose_cfg(RUN))
    report = init_from_checkpoint(module, last)
    source = state(last)
    assert len(report.loaded) == report.n_model == len(source) and not report.skipped_blocks
    assert all(torch.equal(t, source[k]) for k, t in module.state_dict().items())


def test_init_from_mismatch_is_a_config_error_naming_both_shapes(
    tmp_path: Path, run_a: tuple[dict[str, Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, run_dir = run_a
    last = run_dir / "checkpoints" / "last.ckpt"
    wider = [*RUN, "core.block.widths=[16,16,16,16]"]
    fresh = build_module(compose_cfg(wider)).state_dict()
    with pytest.raises(ConfigError) as err:
        init_from_checkpoint(build_module(compose_cfg(wider)), last)
    message = str(err.value)
    match = re.match(
        r"init_from: (net\.core\.\S+) has shape \((8, \d+(?:, \d+)*)\) in the checkpoint "
        r"but \((16, \d+(?:, \d+)*)\) in the model; (\d+) of (\d+) model tensors match, 0 loaded",
        message,
    )
    assert match, message
    name = match.group(1)
    assert tuple(state(last)[name].shape) == tuple(int(d) for d in match.group(2).split(", "))
    assert tuple(fresh[name].shape) == tuple(int(d) for d in match.group(3).split(", "))
    assert int(match.group(5)) == len(fresh) and 0 < int(match.group(4)) < len(fresh)

    # through the CLI wrapper: exit 2, one line, before any data is read or anything is written
    run = tmp_path / "run"
    run.mkdir()
    cfg = compose_cfg([*wider, f"init_from={last}"], run_dir=run)
    with pytest.raises(SystemExit) as exit_info:
        run_task(train, cfg)
    assert exit_info.value.code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines == [f"error: {message}"]
    assert list(run.iterdir()) == []


def test_init_from_non_strict_loads_the_blocks_that_match(
    run_a: tuple[dict[str, Any], Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Transfer to another combination (final=bhi): first and core carry over, the new head stays fresh."""
    _, run_dir = run_a
    last = run_dir / "checkpoints" / "last.ckpt"
    other = [*RUN, "final=bhi", "final.block.hidden=[16]"]
    torch.manual_seed(7)
    fresh = build_module(compose_cfg(other)).state_dict()
    torch.manual_seed(7)
    module = build_module(compose_cfg(other))
    with caplog.at_level(logging.INFO, logger="src.checkpoint"):
        report = init_from_checkpoint(module, last, strict=False)
    source, now = state(last), module.state_dict()
    assert set(report.skipped_blocks) >= {"net.final"}
    assert {k.split(".")[1] for k in report.loaded if k.startswith("net.")} == {"first", "core"}
    for name, tensor in now.items():
        expected = source[name] if name in report.loaded else fresh[name]
        assert torch.equal(tensor, expected), name
    assert any("net.final keeps its fresh initialisation" in r.getMessage() for r in caplog.records)
    assert any(f"loaded {len(report.loaded)} of {len(now)} tensors" in r.getMessage() for r in caplog.records)

    with pytest.raises(ConfigError, match="init_from: net.final"):  # strict (the default) refuses the same
        init_from_checkpoint(build_module(compose_cfg(other)), last)


def test_init_from_runs_before_training(
    tmp_path: Path, run_a: tuple[dict[str, Any], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, run_dir = run_a
    last = run_dir / "checkpoints" / "last.ckpt"
    calls: list[tuple[Any, bool]] = []

    def spy(module: PrixFixeModule, path: Any, strict: bool = True) -> Any:
        report = init_from_checkpoint(module, path, strict)
        calls.append((report, strict))
        assert all(torch.equal(t, state(last)[k]) for k, t in module.net.state_dict(prefix="net.").items())
        return report

    monkeypatch.setattr(train_task, "init_from_checkpoint", spy)
    quick = [*RUN, "recipe.epochs=1", "recipe.steps_per_epoch=2", f"init_from={last}", "init_from_strict=false"]
    summary = train(compose_cfg(quick, run_dir=tmp_path))
    assert summary["status"] == "ok" and len(calls) == 1 and calls[0][1] is False
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "ok"


def test_init_from_refuses_what_is_not_a_plain_checkpoint(tmp_path: Path) -> None:
    module = build_module(compose_cfg(RUN))
    with pytest.raises(ConfigError, match=r"init_from: checkpoint .*absent.ckpt does not exist"):
        init_from_checkpoint(module, tmp_path / "absent.ckpt")
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": module.state_dict(), "hook": print}, pickled)  # a pickled callable
    with pytest.raises(ConfigError, match=r"cannot load .*pickled.ckpt with torch.load\(weights_only=True\)"):
        init_from_checkpoint(module, pickled)
