"""Vanilla W2S: train the strong student on the weak teacher's labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.testbed.methods.common import fit_predict, harden
from autow2s.testbed.methods.registry import register


@register("vanilla-hard", "strong student on the weak labels thresholded at 0.5", hard=True)
@register("vanilla", "strong student on the weak soft labels (cross-entropy)", hard=False)
def run(ctx: Any, hard: bool = False) -> np.ndarray:
    targets = ctx.weak_soft_labels("train_unlabel")
    if hard:
        targets = harden(targets)
    return fit_predict(ctx, targets)[0]
