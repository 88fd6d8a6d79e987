"""Bootstrapping: strong-to-strong relabelling. Each round trains a fresh student on the last one's labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.testbed.methods.common import fit_predict, harden
from autow2s.testbed.methods.registry import register


@register("bootstrap", "re-train on the previous student's hardened labels, mixed with the weak ones", rounds=2)
def run(ctx: Any, rounds: int = 2, student_weight: float = 0.7) -> np.ndarray:
    weak = ctx.weak_soft_labels("train_unlabel")
    targets = weak
    test = None
    for round_index in range(rounds + 1):
        train_pred, test = fit_predict(ctx, targets, predict_on=("train_unlabel", "test"))
        agreement = float(np.mean(harden(train_pred) == harden(weak)))
        ctx.log(round=round_index, agreement_with_weak=agreement)
        targets = (1 - student_weight) * weak + student_weight * harden(train_pred)
    assert test is not None
    return test
