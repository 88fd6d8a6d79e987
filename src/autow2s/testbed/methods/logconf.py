"""Auxiliary confidence loss (Burns et al. 2023): lean on the student's own hardened predictions."""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.testbed.methods.common import fit_predict
from autow2s.testbed.methods.registry import register


@register("logconf", "weak labels mixed with the student's hardened predictions, ramped in", aux_coef=0.75)
def run(ctx: Any, aux_coef: float = 0.75, warmup_frac: float = 0.2) -> np.ndarray:
    soft = ctx.weak_soft_labels("train_unlabel")
    params = {"aux_coef": aux_coef, "warmup_frac": warmup_frac}
    return fit_predict(ctx, soft, loss="logconf", loss_params=params)[0]
