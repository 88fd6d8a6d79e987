"""Unsupervised elicitation: pick the most bimodal principal direction; weak labels only orient it."""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.testbed.methods.common import representation
from autow2s.testbed.methods.registry import register


def _bimodality(values: np.ndarray, seed: int) -> float:
    """Share of variance explained by a 2-means split of a 1-D projection."""
    from sklearn.cluster import KMeans  # imported here: keeps CLI start-up fast

    km = KMeans(n_clusters=2, n_init=3, random_state=seed).fit(values[:, None])
    return 1.0 - km.inertia_ / (values.var() * values.size + 1e-12)


@register("ue-direction", "most bimodal of the top principal directions, sign set by the weak labels", components=8)
def run(ctx: Any, components: int = 8) -> np.ndarray:
    train, test = representation(ctx, "train_unlabel"), representation(ctx, "test")
    mean, scale = train.mean(axis=0), train.std(axis=0) + 1e-9
    centered = (train - mean) / scale
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    directions = vt[: min(components, vt.shape[0])]
    projections = centered @ directions.T
    scores = [_bimodality(projections[:, j], ctx.seed) for j in range(directions.shape[0])]
    best = int(np.argmax(scores))
    ctx.log(direction=best, bimodality=scores[best])
    train_proj = projections[:, best]
    weak = ctx.weak_soft_labels("train_unlabel")
    sign = 1.0 if np.corrcoef(train_proj, weak)[0, 1] >= 0 else -1.0
    test_proj = ((test - mean) / scale) @ directions[best]
    z = sign * (test_proj - np.median(train_proj)) / (train_proj.std() + 1e-9)
    return 1.0 / (1.0 + np.exp(-2.0 * z))
