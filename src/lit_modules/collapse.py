"""What a collapsed run (constant validation predictions) was checked for: the sentence its warning ends with.

Three causes are checked, in this order: training targets that are constant (nothing to learn), a
target range stretched by a few extreme values (a soft-bin or standardised head then sees almost
every read at one value), and the learning rate (core=bhi and sysu blocks collapse at the shared
peak rate of 0.005, in fp32 too). Each is reported with what was found, so the warning names the
likely cause instead of guessing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

STRETCH = 20.0  # range / central 98 % spread above which a few extreme values dominate the range
RATE_SENSITIVE_CORES = ("bhi", "sysu")
SHARED_PEAK_LR = 0.005


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def collapse_checks(train_targets: Tensor, core: str, lr: Any, target_range: Any = None) -> str:
    """``"Checked: ..."``: the training targets' spread and range and the learning rate, each with its finding."""
    y = train_targets.detach().double().cpu().numpy().reshape(len(train_targets), -1)
    y = y[np.isfinite(y).all(axis=1)]
    found: list[str] = []
    if len(y) == 0:
        return "Checked: no finite training target"
    sd = y.std(axis=0)
    if (sd == 0).any():
        t = int(np.flatnonzero(sd == 0)[0])
        found.append(f"the training targets are constant (every one is {y[0, t]:g}): nothing to learn")
    else:
        found.append(f"the training targets vary (sd {sd.min():.3g})")
    low, high = float(y.min()), float(y.max())
    q01, q99 = (float(v) for v in np.quantile(y, [0.01, 0.99]))
    text = f"they span [{low:g}, {high:g}]"
    if target_range is not None:
        text += f", within the declared range [{float(target_range[0]):g}, {float(target_range[1]):g}]"
    if q99 > q01 and high - low > STRETCH * (q99 - q01):
        text += f"; a few extreme values stretch that range: 98 % lie in [{q01:g}, {q99:g}] (check the data)"
    found.append(text)
    rate = _number(lr)
    lr_text = f"recipe.lr={lr}"
    if core in RATE_SENSITIVE_CORES and rate is not None and rate >= SHARED_PEAK_LR:
        lr_text += (
            f": core={core} collapses at the shared peak rate of {SHARED_PEAK_LR:g} in fp32 too; "
            "a lower recipe.lr, such as the team's own, makes it learn"
        )
    else:
        lr_text += " (not known to collapse this core; a lower one is worth a try if the targets are fine)"
    found.append(lr_text)
    return "Checked: " + "; ".join(found)
