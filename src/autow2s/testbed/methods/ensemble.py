"""An ensemble of students whose predictions are averaged: each on a bootstrap resample of the weak labels
(bagging), or all on every item with only their initialisation and batch order differing.

Averaging cancels the part of each student's fit to weak errors that the others do not share.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.methods.common import fit_predict
from autow2s.testbed.methods.registry import register

RESAMPLING = ("bootstrap", "none")


@register("ensemble", "average of students trained on bootstrap resamples of the weak labels", members=5)
def run(ctx: Any, members: int = 5, resample: str = "bootstrap") -> np.ndarray:
    if resample not in RESAMPLING:
        raise AutoW2SError(f"ensemble resample={resample!r} is not one of {RESAMPLING}")
    if members < 1:
        raise AutoW2SError(f"ensemble members={members} must be at least 1")
    soft = ctx.weak_soft_labels("train_unlabel")
    predictions = []
    for _ in range(members):
        rows = ctx.rng.integers(0, soft.size, size=soft.size) if resample == "bootstrap" else None
        predictions.append(fit_predict(ctx, soft, rows=rows)[0])
    return np.mean(predictions, axis=0)
