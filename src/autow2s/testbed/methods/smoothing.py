"""Reshape the weak soft labels before training: temperature scaling or label smoothing."""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.testbed.methods.common import fit_predict
from autow2s.testbed.methods.registry import register


def _with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    clipped = np.clip(probs, 1e-6, 1 - 1e-6)
    logits = np.log(clipped) - np.log1p(-clipped)
    return 1.0 / (1.0 + np.exp(-logits / temperature))


@register("temperature", "weak logits divided by a temperature (T > 1 softens, T < 1 sharpens)", temperature=0.5)
def run_temperature(ctx: Any, temperature: float = 0.5) -> np.ndarray:
    return fit_predict(ctx, _with_temperature(ctx.weak_soft_labels("train_unlabel"), temperature))[0]


@register("label-smoothing", "weak labels hardened, then smoothed towards 0.5", epsilon=0.2)
def run_smoothing(ctx: Any, epsilon: float = 0.2) -> np.ndarray:
    hard = (ctx.weak_soft_labels("train_unlabel") >= 0.5).astype(np.float64)
    return fit_predict(ctx, hard * (1 - epsilon) + epsilon / 2)[0]
