"""Hardware-aware precision: where bf16 is native, the trainer preset's fallback and inference autocast.

bf16 only pays where the hardware computes it natively: CUDA GPUs that report bf16 support, and
CPUs with AVX512-BF16 or AMX. Elsewhere PyTorch emulates it and a bf16 run is slower than fp32, so
``trainer=cpu_fast`` (``precision_fallback: true``) trains in fp32 there and says so in a warning.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from omegaconf import DictConfig, open_dict

from src.errors import ConfigError

log = logging.getLogger(__name__)

BF16_PRECISIONS = {"bf16", "bf16-mixed", "bf16-true"}
INFERENCE_PRECISIONS = ("auto", "32", "bf16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX tiles)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 natively (CUDA: ``torch.cuda.is_bf16_supported``)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        return cpu_has_native_bf16()
    return False


def apply_precision_fallback(cfg: DictConfig) -> str:
    """With ``precision_fallback: true``, bf16 on a CPU without native bf16 becomes ``32-true`` (warned).

    Returns the trainer precision that will be used. Only the CPU accelerator falls back: GPU and TPU
    presets choose their own precision.
    """
    trainer = cfg.trainer
    precision = str(trainer.get("precision", "32-true"))
    on_cpu = str(trainer.get("accelerator", "cpu")) == "cpu"
    if cfg.get("precision_fallback") and on_cpu and precision in BF16_PRECISIONS and not cpu_has_native_bf16():
        log.warning(
            "trainer.precision=%s: this CPU has no native bf16 (AVX512-BF16 or AMX), where bf16 runs slower than "
            "fp32; training in 32-true instead (set precision_fallback=false to force bf16)",
            precision,
        )
        with open_dict(cfg):
            trainer.precision = "32-true"
        return "32-true"
    return precision


def inference_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for prediction: ``"32"`` -> None (fp32), ``"bf16"`` -> bf16,
    ``"auto"`` -> bf16 where ``device`` computes it natively, else None."""
    choice = str(precision).strip().lower()
    if choice not in INFERENCE_PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(INFERENCE_PRECISIONS)}")
    if choice == "bf16" or (choice == "auto" and native_bf16(device)):
        return torch.bfloat16
    return None


@contextlib.contextmanager
def inference_autocast(dtype: torch.dtype | None, device: torch.device) -> Iterator[None]:
    """Autocast to ``dtype`` on ``device`` (no-op for None); objectives compute their outputs in fp32."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
