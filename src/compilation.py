"""``compile``: the composed network under ``torch.compile``, in place (checkpoint keys unchanged).

On one H200 (``bench/gpu_step_profile.py``), DREAM-CNN's bf16 step at batch 1024 goes from 56.0
to 38.6 ms with Inductor, which fuses the BatchNorm, SiLU, squeeze-excitation and concatenation
kernels around the convolutions; compiling takes about 40 s, so it pays for long runs only.
"""

from __future__ import annotations

import logging

from torch import nn

from src.errors import ConfigError

log = logging.getLogger(__name__)


def compile_backend(setting: object) -> str | None:
    """The ``torch.compile`` backend a ``compile`` setting asks for (None: no compilation)."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return "inductor"
    if isinstance(setting, str) and setting.strip():
        return setting.strip()
    raise ConfigError(f"compile must be true, false or a torch.compile backend name (got {setting!r})")


def compile_network(module: nn.Module, setting: object) -> None:
    """Compile ``module.net`` in place with ``nn.Module.compile`` (its parameters and state-dict keys stay)."""
    backend = compile_backend(setting)
    if backend is None:
        return
    module.net.compile(backend=backend)
    log.info("compile: the network runs under torch.compile (backend %s); the first steps compile it", backend)
