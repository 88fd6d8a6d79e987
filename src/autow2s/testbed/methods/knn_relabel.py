"""kNN relabelling: replace each weak label by the mean weak label of its neighbours in strong space."""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.testbed.methods.common import fit_predict, representation
from autow2s.testbed.methods.registry import register


@register("knn-relabel", "mean weak label over the k nearest neighbours in the strong feature space", k=32)
def run(ctx: Any, k: int = 32) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors  # imported here: keeps CLI start-up fast

    inputs = representation(ctx, "train_unlabel")
    standardized = (inputs - inputs.mean(axis=0)) / (inputs.std(axis=0) + 1e-9)
    weak = ctx.weak_soft_labels("train_unlabel")
    k = int(min(k, len(weak)))
    _, neighbours = NearestNeighbors(n_neighbors=k).fit(standardized).kneighbors(standardized)
    relabelled = weak[neighbours].mean(axis=1)
    ctx.log(changed_fraction=float(np.mean((relabelled >= 0.5) != (weak >= 0.5))))
    return fit_predict(ctx, relabelled)[0]
