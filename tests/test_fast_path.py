"""The fast path: bf16 training and prediction stay close to fp32, the cpu_fast preset, the cheap NaN check.

Tolerances (documented in docs/performance.md): on a fixed batch of 16 synthetic reads, every block family
(first, core and final of one team, shrunk as in the menu test, weights at unit gain and BatchNorm statistics
from the batch, so that predictions vary across reads), bf16 autocast (Lightning's ``bf16-mixed``, as
``trainer=cpu_fast`` uses it) gives a training loss within 2 % of fp32's, and bf16 prediction
(``predict_sequences(precision="bf16")``) differs from fp32 by at most a quarter of the fp32 predictions'
standard deviation over the batch plus 0.5 % of their magnitude, with a Pearson r of at least 0.99 (measured
on this fixture: loss <= 0.5 %, predictions <= 0.12 sd + 0.4 % of the magnitude, r >= 0.996).
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import warnings

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.plugins.precision import MixedPrecision

from src import precision as speed
from src.datamodules.encoding import encode_array
from src.datamodules.synthetic import generate
from src.errors import ConfigError, DivergedError
from src.inference import predict_sequences
from src.train_task import build_module
from tests.helpers import COMBINATIONS, CONF_DIR, ROOT, SAMPLE, SHRINK, compose_cfg

FAMILIES = sorted(p.stem for p in (CONF_DIR / "first").glob("*.yaml"))
PROCESSINGS = {p.stem for p in (CONF_DIR / "processing").glob("*.yaml")}
LOSS_RTOL = 0.02
PRED_TOL_SD = 0.25
PRED_TOL_REL = 0.005
PRED_MIN_R = 0.99
HEAD_GAIN = 1.5


def family_module(family: str, extra: list[str] | None = None):
    """The family's first, core and final blocks (shrunk as in the menu test) with its own processing."""
    processing = family if family in PROCESSINGS else "onehot"
    overrides = [f"first={family}", f"core={family}", f"final={family}", f"processing={processing}", "logger=none"]
    overrides += SHRINK["first", family] + SHRINK["core", family] + SHRINK["final", family]
    torch.manual_seed(0)
    module = build_module(compose_cfg(overrides + list(extra or [])))
    with torch.no_grad():  # weights at unit gain, so that predictions vary across reads (a strict comparison)
        for p in module.parameters():
            if p.dim() > 1:
                p.normal_(0.0, HEAD_GAIN / math.sqrt(p[0].numel()))
    return module


def calibrate(module, batch: dict[str, torch.Tensor]) -> None:
    """BatchNorm running statistics from the batch (as after training), so eval-mode activations are O(1)."""
    no_dropout(module)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = None  # cumulative average: one pass sets the batch's statistics
        module.net(batch["x"], batch)


def fixed_batch(module, n: int = 16) -> tuple[list[str], dict[str, torch.Tensor]]:
    records = generate(n, seed=0)
    codes, lengths = encode_array(records.sequences)
    proc = module.processing
    fields = {k: torch.from_numpy(v) for k, v in proc.prepare(codes, lengths).items()}
    y = torch.as_tensor(records.targets, dtype=torch.float32).reshape(n, -1)
    module.objective.fit(y)
    gen = torch.Generator().manual_seed(0)
    batch = proc.make_batch(fields, y, torch.arange(n) % proc.train_views, train=True, generator=gen)
    return records.sequences, batch


def no_dropout(module) -> None:
    """Train mode (batch statistics) without random draws, so both precisions see the same network."""
    module.train()
    for m in module.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_loss_and_predictions_stay_within_tolerance_of_fp32(family: str) -> None:
    module = family_module(family)
    sequences, batch = fixed_batch(module)
    calibrate(module, batch)
    losses = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() outside a Trainer
        for name, plugin in (("fp32", None), ("bf16", MixedPrecision("bf16-mixed", "cpu"))):
            torch.manual_seed(0)
            with torch.no_grad(), plugin.forward_context() if plugin else torch.autocast("cpu", enabled=False):
                losses[name] = float(module.training_step(batch, 0))
    assert math.isfinite(losses["fp32"]) and math.isfinite(losses["bf16"])
    assert abs(losses["bf16"] - losses["fp32"]) <= LOSS_RTOL * abs(losses["fp32"]), losses

    fp32 = predict_sequences(module, sequences, progress=False, precision="32")[:, 0]
    bf16 = predict_sequences(module, sequences, progress=False, precision="bf16")[:, 0]
    spread = float(fp32.std())
    assert spread > 1e-3, f"{family}: predictions barely vary ({spread}); the comparison would mean nothing"
    assert np.abs(bf16 - fp32).max() <= PRED_TOL_SD * spread + PRED_TOL_REL * np.abs(fp32).max()
    assert np.corrcoef(bf16, fp32)[0, 1] > PRED_MIN_R


def test_rc_average_is_one_batched_forward_equal_to_two_passes() -> None:
    module = family_module("autosome").eval()
    _, batch = fixed_batch(module)
    x = batch["x"]
    calls = []
    hook = module.net.register_forward_hook(lambda *_: calls.append(1))
    with torch.inference_mode():
        averaged = module.predict_expression(x, rc_average=True)
        two_pass = 0.5 * (module(x) + module(module.processing.reverse_complement(x)))
    hook.remove()
    assert len(calls) == 3  # one forward for both strands, then the two reference passes
    torch.testing.assert_close(averaged, two_pass, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ the preset
def compose_with_cpu_fast(combos: list[tuple[str, str, str]]) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):  # one initialisation for all
        for first, core, final in combos:
            cfg = compose("train", overrides=[f"first={first}", f"core={core}", f"final={final}", "trainer=cpu_fast"])
            assert (cfg.first.name, cfg.core.name, cfg.final.name) == (first, core, final)
            assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accelerator == "cpu"
            assert cfg.precision_fallback is True and cfg.keep_freed_memory is True and cfg.nan_check_every > 1


def test_cpu_fast_composes_with_the_menu_sample() -> None:
    compose_with_cpu_fast(SAMPLE)  # the menu test's seeded share of the cross product


@pytest.mark.slow
def test_cpu_fast_composes_with_every_menu_combination() -> None:
    assert len(COMBINATIONS) == len(FAMILIES) ** 3
    compose_with_cpu_fast(COMBINATIONS)


def test_cpu_fast_falls_back_loudly_without_native_bf16(monkeypatch, caplog) -> None:
    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: False)
    cfg = compose_cfg(["trainer=cpu_fast"])
    with caplog.at_level(logging.WARNING, logger="src.precision"):
        assert speed.apply_precision_fallback(cfg) == "32-true"
    assert cfg.trainer.precision == "32-true"
    assert "no native bf16" in caplog.text and "32-true" in caplog.text
    # an explicit bf16 request without the preset's fallback is left alone, and so is the GPU preset
    explicit = compose_cfg(["trainer.precision=bf16-mixed"])
    assert speed.apply_precision_fallback(explicit) == "bf16-mixed"
    assert speed.apply_precision_fallback(compose_cfg(["trainer=gpu"])) == "bf16-mixed"


def test_cpu_fast_keeps_bf16_where_native(monkeypatch) -> None:
    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: True)
    assert speed.apply_precision_fallback(compose_cfg(["trainer=cpu_fast"])) == "bf16-mixed"


def test_inference_precision_choice(monkeypatch) -> None:
    cpu = torch.device("cpu")
    assert speed.inference_dtype("32", cpu) is None
    assert speed.inference_dtype("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: False)
    assert speed.inference_dtype("auto", cpu) is None
    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: True)
    assert speed.inference_dtype("auto", cpu) is torch.bfloat16
    with pytest.raises(ConfigError, match="precision: 'fp8'"):
        speed.inference_dtype("fp8", cpu)


# ------------------------------------------------------------------------------------------------ NaN check
def test_nan_check_records_the_first_bad_step_on_device_and_raises_when_read() -> None:
    module = family_module("resnet")
    _, batch = fixed_batch(module)
    no_dropout(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module.training_step(batch, 0)
        assert int(module._first_bad_step) == -1
        module._check_finite()  # finite so far: nothing raised
        with torch.no_grad():
            next(module.parameters()).fill_(float("nan"))
        module.training_step(batch, 1)
        module.training_step(batch, 2)
    assert int(module._first_bad_step) == 0  # global step without a trainer; the first bad one is kept
    with pytest.raises(DivergedError, match=r"NaN/inf at epoch 0, step 0"):
        module._check_finite()


# ------------------------------------------------------------------------------------------------ the benchmark
def test_train_throughput_smoke_mode(dream_sample, tmp_path, monkeypatch, capsys) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import train_throughput

    args = ["--smoke", "--compare", "--predict", "--data", str(dream_sample), "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["train_throughput.py", *args])
    train_throughput.main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"dream_cnn (bf16-mixed|32-true) batch=8: \d+\.\d seq/s", lines[-1]), lines[-1]
    assert any(line.startswith("Lightning overhead over the bare loop") for line in lines)
    assert any(line.startswith("predict fast ") for line in lines)
    (result,) = tmp_path.glob("train_throughput-*-dream_cnn-cpu-b8-smoke.json")
    assert result.stat().st_size > 0


def test_gpu_step_profile_smoke_mode(dream_sample, tmp_path, capsys) -> None:
    """The GPU step profile's CPU smoke run: a timed eager step, an operator table, JSON and the headline."""
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_step_profile

    assert gpu_step_profile.main(["--smoke", "--data", str(dream_sample), "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(
        r"dream_cnn batch=8 on cpu: eager \d+\.\d ms/step \(80 x 1,000 steps ~ \d+ min, steps only\)", lines[-1]
    )
    assert any(line.startswith("| aten::") for line in lines)
    payload = json.loads((tmp_path / "gpu_step_profile-dream_cnn-b8.json").read_text())
    assert [f["form"] for f in payload["forms"]] == ["eager"] and payload["top_operators"]
