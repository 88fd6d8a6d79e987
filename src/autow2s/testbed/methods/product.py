"""Product loss: the target is proportional to weak^alpha * student^beta."""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.testbed.methods.common import fit_predict
from autow2s.testbed.methods.registry import register


@register("product", "targets from the product of weak and student probabilities", alpha=1.0, beta=1.0)
def run(ctx: Any, alpha: float = 1.0, beta: float = 1.0, warmup_frac: float = 0.1) -> np.ndarray:
    soft = ctx.weak_soft_labels("train_unlabel")
    params = {"alpha": alpha, "beta": beta, "warmup_frac": warmup_frac}
    return fit_predict(ctx, soft, loss="product", loss_params=params)[0]
