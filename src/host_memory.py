"""``keep_freed_memory``: host memory a training step frees stays in the process for the next step.

glibc's ``malloc`` gives every block above its mmap threshold (at most 32 MB; a batch's activations are
mostly larger) its own ``mmap`` and hands it back to the kernel on ``free``. A CPU training step then
faults every page of its activations in again, zero-filled by the kernel: on the 2-core development
machine, DREAM-RNN's bf16 step at batch 256 took about 490,000 minor page faults and 1 s of kernel time
per step. With the setting on, large blocks come from the heap and freed memory is kept (no mmap, no
trimming below 2 GiB of free memory), so later steps reuse pages that are already mapped: about 115,000
faults per step, DREAM-RNN's step 13 % and DREAM-CNN's 4 % faster (``bench/train_throughput.py``).

The price is memory: the process keeps its peak (DREAM-RNN batch 256: 1.4 -> 2.0 GB peak RSS), so the
setting is part of ``trainer=cpu_fast`` and not of the default, whose full-scale memory budget is tighter.
It is process-wide and stays for the rest of the process (a sweep worker that ran a ``cpu_fast`` job keeps it);
it only applies where the C library is glibc, and elsewhere logs that it has no effect.
"""

from __future__ import annotations

import ctypes
import logging
import platform

from src.errors import ConfigError

log = logging.getLogger(__name__)

# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1  # free memory at the top of the heap kept before it is given back to the kernel
M_MMAP_MAX = -4  # how many blocks may be served by their own mmap; 0: none, every block comes from the heap
KEEP_BYTES = 2**31 - 1  # mallopt takes an int: the largest trim threshold it accepts (2 GiB)

_applied = False


def keep_freed_memory(setting: object) -> bool:
    """Apply ``keep_freed_memory`` to this process; returns whether freed memory is now kept.

    ``setting`` must be a bool (the config key's value). Applying it twice is harmless.
    """
    global _applied
    if not isinstance(setting, bool):
        raise ConfigError(f"keep_freed_memory must be true or false (got {setting!r})")
    if not setting:
        return False
    if _applied:
        return True
    libc_name, _ = platform.libc_ver()
    if libc_name != "glibc":
        log.warning("keep_freed_memory=true has no effect here: the C library is not glibc (%s)", libc_name or "?")
        return False
    libc = ctypes.CDLL(None)  # the process's own C library
    # mallopt returns 1 on success; the heap is configured before the next large allocation either way
    if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)):
        log.warning("keep_freed_memory=true: glibc's mallopt refused the settings; freed memory is returned as usual")
        return False
    _applied = True
    log.info("keep_freed_memory: freed host memory stays in the process for the next step (glibc mallopt)")
    return True
