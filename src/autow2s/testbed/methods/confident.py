"""Train only on items the weak teacher is confident about (the anchor's 0.25/0.75 default)."""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.testbed.methods.common import fit_predict
from autow2s.testbed.methods.registry import register

MIN_KEPT = 50


@register("confident", "strong student only on items with weak P <= 0.25 or >= 0.75", low=0.25, high=0.75)
def run(ctx: Any, low: float = 0.25, high: float = 0.75) -> np.ndarray:
    soft = ctx.weak_soft_labels("train_unlabel")
    keep = np.flatnonzero((soft <= low) | (soft >= high))
    if keep.size < MIN_KEPT:
        # Too few confident items: fall back to the most confident quarter.
        keep = np.argsort(-np.abs(soft - 0.5))[: max(MIN_KEPT, soft.size // 4)]
    ctx.log(kept_fraction=keep.size / soft.size)
    return fit_predict(ctx, soft, rows=keep)[0]
