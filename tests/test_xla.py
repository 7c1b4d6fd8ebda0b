"""A real ``Trainer(accelerator="tpu")`` fit through torch_xla, run on the CPU (``PJRT_DEVICE=CPU``).

torch_xla pairs only with the torch of the same minor version, so it lives in its own venv:
``make test-xla`` builds ``.venv-xla`` (requirements-xla.txt) and runs this file. In the normal
suite torch_xla is absent and the module is skipped.

The only thing patched is Lightning's TPU device discovery, which counts TPU chips on the PCI bus
(none here): it is told there is one device. Everything else (the XLA accelerator, the
single-device XLA strategy, bf16, the XLA graph compilation and execution) is real.
"""

from __future__ import annotations

import math
import os

import pytest

os.environ.setdefault("PJRT_DEVICE", "CPU")  # before torch_xla is imported: XLA's CPU client
torch_xla = pytest.importorskip("torch_xla", reason="torch_xla is not installed (run `make test-xla`)")

from tests.helpers import FAST, compose_cfg  # noqa: E402

pytestmark = pytest.mark.xla

TINY_RESNET = [
    "first=resnet",
    "core=resnet",
    "final=resnet",
    "processing=onehot",
    "first.block.out_channels=8",
    "core.block.widths=[8,8]",
    "core.block.depths=[1,1]",
    "core.block.strides=[1,2]",
]


@pytest.fixture
def one_xla_device(monkeypatch):
    """Lightning sees one TPU device (its discovery counts PCI TPU chips; the XLA CPU client has one device)."""
    from lightning.fabric.accelerators.xla import XLAAccelerator

    monkeypatch.setattr(XLAAccelerator, "auto_device_count", staticmethod(lambda: 1))
    monkeypatch.setattr(XLAAccelerator, "is_available", staticmethod(lambda: True))
    import torch_xla.runtime as xr

    assert xr.device_type() == "CPU", "set PJRT_DEVICE=CPU"
    return torch_xla.device()


def test_xla_runtime_computes_on_the_cpu_client(one_xla_device):
    import torch

    x = torch.arange(6.0, device=one_xla_device).reshape(2, 3)
    assert one_xla_device.type == "xla"
    assert (x @ x.T).cpu().tolist() == [[5.0, 14.0], [14.0, 50.0]]


def test_lightning_tpu_trainer_fits_through_xla(one_xla_device):
    import lightning as L
    import torch
    import torch_xla.debug.metrics as met
    from torch.utils.data import DataLoader, TensorDataset

    class Regressor(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.Flatten())
            self.head = torch.nn.Linear(8 * 20, 1)
            self.devices_seen: set[str] = set()

        def training_step(self, batch, batch_idx):
            x, y = batch
            self.devices_seen.add(str(x.device.type))
            loss = torch.nn.functional.mse_loss(self.head(self.net(x)).squeeze(1), y)
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 4, 20, generator=gen), torch.randn(64, generator=gen))
    model = Regressor()
    trainer = L.Trainer(
        accelerator="tpu",
        devices=1,
        precision="bf16-true",
        max_steps=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    assert type(trainer.strategy).__name__ == "SingleDeviceXLAStrategy"
    trainer.fit(model, DataLoader(data, batch_size=16))
    assert trainer.global_step == 4
    assert model.devices_seen == {"xla"}
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert met.metric_data("CompileTime") is not None  # XLA compiled graphs


def test_prixfixe_training_with_trainer_tpu(one_xla_device, tmp_path):
    """The project's own train task with conf/trainer/tpu.yaml: composed model, data module, NaN check."""
    import torch_xla.debug.metrics as met

    from src.train_task import train

    def compiles() -> int:
        data = met.metric_data("CompileTime")
        return 0 if data is None else int(data[0])

    cfg = compose_cfg(
        [*FAST, *TINY_RESNET, "trainer=tpu", "trainer.devices=1", "trainer.limit_val_batches=1"],
        run_dir=tmp_path,
    )
    assert cfg.trainer.accelerator == "tpu" and cfg.trainer.precision == "bf16-true"
    assert cfg.nan_check_every == 100
    before = compiles()
    summary = train(cfg)
    assert compiles() > before  # the composed network ran as XLA graphs
    assert summary["global_step"] == 2
    assert -1.0 <= summary["metrics"]["val/pearson"] <= 1.0
    assert (tmp_path / "metrics.json").exists()
