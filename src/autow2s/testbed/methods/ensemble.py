"""An ensemble of students, each on a bootstrap resample of the weak labels; predictions averaged."""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.testbed.methods.common import fit_predict
from autow2s.testbed.methods.registry import register


@register("ensemble", "average of students trained on bootstrap resamples of the weak labels", members=5)
def run(ctx: Any, members: int = 5) -> np.ndarray:
    soft = ctx.weak_soft_labels("train_unlabel")
    predictions = []
    for _ in range(members):
        rows = ctx.rng.integers(0, soft.size, size=soft.size)
        predictions.append(fit_predict(ctx, soft, rows=rows)[0])
    return np.mean(predictions, axis=0)
