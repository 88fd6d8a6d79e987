"""Label spreading on a kNN graph of the strong representation, then a strong student on the spread labels.

The weak teacher's errors are scattered, while the strong model's geometry groups items by their
truth: letting every label flow to its neighbours (several hops, alpha the share taken from the
graph) out-votes weak errors inside a neighbourhood. Spreading uses the symmetric normalisation
of Zhou et al. (2004); propagation is the random-walk one (Zhu & Ghahramani 2002). Every item keeps
a (1 - alpha) pull towards its own weak label, since here all labels are noisy, none clamped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.methods.common import fit_predict, representation
from autow2s.testbed.methods.registry import register

METRICS = ("cosine", "euclidean")
NORMALIZATIONS = ("symmetric", "random-walk")


def nearest_neighbours(matrix: np.ndarray, k: int, metric: str = "cosine", block: int = 1024) -> np.ndarray:
    """Indices (n, k) of each row's k nearest other rows, by blocked matrix products on standardised columns.

    6,000 x 768 takes about a second on one core; memory stays at block x n similarities.
    """
    if metric not in METRICS:
        raise AutoW2SError(f"graph metric {metric!r} is not one of {METRICS}")
    n = matrix.shape[0]
    if n < 2:
        raise AutoW2SError("a kNN graph needs at least two items")
    k = int(min(max(k, 1), n - 1))
    points = ((matrix - matrix.mean(axis=0)) / (matrix.std(axis=0) + 1e-9)).astype(np.float32)
    if metric == "cosine":
        points /= np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-9)
        offset = np.zeros(n, dtype=np.float32)
    else:  # -|x - y|^2 = 2 x.y - |y|^2 - |x|^2, and |x|^2 is the same along a row
        offset = (points * points).sum(axis=1)
    neighbours = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        closeness = points[rows] @ points.T
        if metric == "euclidean":
            closeness = 2 * closeness - offset[None, :]
        closeness[np.arange(rows.size), rows] = -np.inf  # never one's own neighbour
        neighbours[rows] = np.argpartition(closeness, n - k, axis=1)[:, n - k:]
    return neighbours


def knn_graph(matrix: np.ndarray, k: int, metric: str = "cosine") -> Any:
    """A symmetric 0/1 kNN graph (scipy CSR, no self-loops) of the rows of a matrix."""
    from scipy import sparse  # type: ignore[import-untyped]  # scikit-learn's dependency; imported here: fast CLI start

    neighbours = nearest_neighbours(matrix, k, metric)
    n, k = neighbours.shape
    rows = np.repeat(np.arange(n), k)
    graph = sparse.csr_matrix((np.ones(rows.size), (rows, neighbours.reshape(-1))), shape=(n, n))
    return graph.maximum(graph.T).tocsr()


def spread(graph: Any, soft: np.ndarray, alpha: float = 0.99, normalization: str = "symmetric") -> np.ndarray:
    """The fixed point of F <- alpha * S F + (1 - alpha) Y, with Y = [1 - soft, soft]; returns P(label = 1).

    Solved by conjugate gradients on a symmetric positive definite system (I - alpha S for the symmetric
    normalisation, D - alpha W for the random-walk one), so alpha near 1 costs no thousands of sweeps.
    """
    from scipy import sparse
    from scipy.sparse.linalg import cg  # type: ignore[import-untyped]

    if not 0 <= alpha < 1:
        raise AutoW2SError(f"alpha={alpha} must be in [0, 1): it is the share each item takes from its neighbours")
    if normalization not in NORMALIZATIONS:
        raise AutoW2SError(f"normalization {normalization!r} is not one of {NORMALIZATIONS}")
    degree = np.asarray(graph.sum(axis=1)).reshape(-1)
    degree[degree == 0] = 1.0
    seeds = np.stack([1.0 - soft, soft], axis=1)
    if normalization == "symmetric":
        scale = sparse.diags(1.0 / np.sqrt(degree))
        system = sparse.identity(graph.shape[0]) - alpha * (scale @ graph @ scale)
        right = (1 - alpha) * seeds
    else:
        system = sparse.diags(degree) - alpha * graph
        right = (1 - alpha) * degree[:, None] * seeds
    system = system.tocsr()
    scores = np.empty_like(seeds)
    for column in range(2):
        scores[:, column], _ = cg(system, right[:, column], x0=seeds[:, column], rtol=1e-8, maxiter=2000)
    totals = scores.sum(axis=1)
    return np.clip(scores[:, 1] / np.maximum(totals, 1e-12), 0.0, 1.0)


def match_distribution(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scores mapped by rank onto the values of `reference`: keeps the spread ordering, the weak labels' spread.

    Spreading with alpha near 1 pulls every score towards the global mean (thresholding at 0.5 would
    then give one class); rank matching keeps the weak labels' class balance and confidence profile.
    """
    matched = np.empty_like(reference, dtype=np.float64)
    matched[np.argsort(scores, kind="stable")] = np.sort(reference)
    return matched


def spread_labels(ctx: Any, soft: np.ndarray, *, k: int = 16, alpha: float = 0.99, metric: str = "cosine",
                  normalization: str = "symmetric") -> np.ndarray:
    """The weak labels of train_unlabel spread over the strong representation's kNN graph, rank-matched to them."""
    graph = knn_graph(representation(ctx, "train_unlabel"), k, metric)
    spread_soft = match_distribution(spread(graph, soft, alpha, normalization), soft)
    ctx.log(spread_changed_fraction=float(np.mean((spread_soft >= 0.5) != (soft >= 0.5))))
    return spread_soft


def _run(ctx: Any, k: int, alpha: float, metric: str, normalization: str, loss: str,
         aux_coef: float) -> np.ndarray:
    targets = spread_labels(ctx, ctx.weak_soft_labels("train_unlabel"), k=k, alpha=alpha, metric=metric,
                            normalization=normalization)
    loss_params = {"aux_coef": aux_coef} if loss == "logconf" else {}
    return fit_predict(ctx, targets, loss=loss, loss_params=loss_params)[0]


@register("label-spreading", "weak labels spread over a kNN graph of the strong representation, then a student",
          k=16, alpha=0.99, metric="cosine", loss="xent")
def run(ctx: Any, k: int = 16, alpha: float = 0.99, metric: str = "cosine", loss: str = "xent",
        aux_coef: float = 0.5) -> np.ndarray:
    return _run(ctx, k, alpha, metric, "symmetric", loss, aux_coef)


@register("label-propagation", "weak labels propagated by random walks on a kNN graph of the strong representation",
          k=16, alpha=0.99, metric="euclidean", loss="xent")
def run_propagation(ctx: Any, k: int = 16, alpha: float = 0.99, metric: str = "euclidean", loss: str = "xent",
                    aux_coef: float = 0.5) -> np.ndarray:
    return _run(ctx, k, alpha, metric, "random-walk", loss, aux_coef)
