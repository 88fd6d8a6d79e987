"""Synthetic 'features' tasks whose weak-to-strong regime is set by explicit knobs.

Every item has a latent truth: a cluster c (what the strong view separates) and a label y that
agrees with c except for a `label_noise` fraction, which caps the ceiling. On the linear structure the
label also weighs (`hidden_weight`) a subtle cue that the strong view shows only as faintly as its
padding noise: the ceiling learns it from labels, but clustering the strong features and orienting
the clusters by the weak labels finds only c, so it stays below the ceiling. The views:
- strong: the truth coordinate(s) scaled by `truth_salience`, the weak model's nuisance seen
  through `nuisance_visibility`, and high-variance distractor directions (half of them
  bimodal, so clustering alone latches onto the wrong structure), all mixed by a random rotation;
- weak: a single noisy score `weak_access * truth + nuisance_weight * nuisance + noise`, plus a
  few junk coordinates. The nuisance is the weak model's systematic error: imitating it costs
  the student accuracy, and how much it can imitate is `nuisance_visibility`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from autow2s.testbed.tasks.dataset import Split, Task, features_split
from autow2s.testbed.tasks.schema import TaskMeta


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of a synthetic task; the defaults are the calibrated synth-linear preset."""

    structure: str = "linear"  # linear | nonlinear | pairwise
    n_train_label: int = 1000
    n_train_unlabel: int = 6000
    n_test: int = 4000
    strong_dim: int = 48
    weak_dim: int = 8
    latent: str = "clusters"  # linear only: clusters (a bimodal truth) | continuous (a Gaussian truth)
    label_noise: float = 0.12  # fraction of labels that disagree with the latent cluster (or its sign)
    cluster_separation: float = 1.5  # distance of each cluster centre from 0, in noise units
    truth_salience: float = 1.0  # scale of the truth direction in the strong view
    hidden_weight: float = 1.35  # linear only: weight in the label of a subtle cue no clustering can find
    hidden_salience: float = 0.5  # scale of that cue in the strong view (0.5: as faint as the padding noise)
    weak_access: float = 1.0  # how much truth the weak score carries
    weak_noise: float = 1.5  # independent noise in the weak score (the student averages it away)
    nuisance_weight: float = 2.6  # how much the weak score leans on the nuisance
    nuisance_visibility: float = 0.9  # correlation of the strong view's nuisance with the weak one's
    n_distractors: int = 6
    distractor_scale: float = 3.0  # std of distractor directions (the truth is not the top one)
    data_seed: int = 0

    def with_overrides(self, **knobs: Any) -> SynthConfig:
        return replace(self, **knobs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def _clusters(rng: np.random.Generator, n: int, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Latent cluster c in {0,1} and the label y, flipped from c for a label_noise fraction."""
    cluster = rng.integers(0, 2, size=n)
    flip = rng.random(n) < cfg.label_noise
    return cluster, np.where(flip, 1 - cluster, cluster)


def _bimodal(rng: np.random.Generator, cluster: np.ndarray, separation: float) -> np.ndarray:
    return (2 * cluster - 1) * separation + rng.normal(size=cluster.shape[0])


def _distractors(rng: np.random.Generator, n: int, cfg: SynthConfig) -> np.ndarray:
    """High-variance directions unrelated to the label; half are bimodal decoys."""
    cols = []
    for j in range(cfg.n_distractors):
        # Distinct scales keep the directions apart under PCA (equal ones would blur the decoys).
        scale = cfg.distractor_scale * (1.0 + 0.15 * j)
        if j % 2 == 0:
            decoy = _bimodal(rng, rng.integers(0, 2, size=n), cfg.cluster_separation * 1.4)
            cols.append(scale * decoy / np.sqrt(1 + (cfg.cluster_separation * 1.4) ** 2))
        else:
            cols.append(scale * rng.normal(size=n))
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


def _strong_view(rng: np.random.Generator, latent: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """Pad the latent block with unit noise to full width, then rotate."""
    n, k = latent.shape
    dim = mix.shape[0]
    if k > dim:
        raise ValueError(f"strong_dim={dim} is too small for {k} latent directions; raise strong_dim")
    full = np.concatenate([latent, rng.normal(size=(n, dim - k)) * 0.5], axis=1)
    return full @ mix


def _weak_view(rng: np.random.Generator, score: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    junk = rng.normal(size=(score.shape[0], cfg.weak_dim - 1))
    return np.concatenate([score[:, None], junk], axis=1)


def _nuisance(rng: np.random.Generator, n: int, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """The weak score's nuisance, and the strong view's (partly visible) copy of it."""
    nuisance = rng.normal(size=n)
    rho = cfg.nuisance_visibility
    seen = rho * nuisance + np.sqrt(max(0.0, 1 - rho**2)) * rng.normal(size=n)
    return nuisance, seen


def _linear_truth(rng: np.random.Generator, n: int, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The truth coordinate, the hidden cue (n×0 when hidden_weight is 0) and the label.

    clusters: a two-cluster mixture (centres at ±cluster_separation); the label is the cluster, or with
    hidden_weight > 0, 1[(2c − 1) + hidden_weight·h > 0] for a standard normal cue h that the strong view
    shows only as faintly as its padding noise (so the ceiling learns it from labels but no clustering or
    principal component finds it); then a label_noise fraction of labels is flipped.
    continuous: a standard normal truth with no gap to find, the label sign(truth + hidden_weight·h + e)
    with e ~ N(0, tan(π·label_noise)²) (a label_noise fraction disagree with the sign, mostly near the
    boundary, as on real data); cluster_separation is unused.
    """
    hidden = rng.normal(size=n) if cfg.hidden_weight else np.zeros(0)
    cue = cfg.hidden_weight * hidden if cfg.hidden_weight else 0.0
    if cfg.latent == "continuous":
        truth = rng.normal(size=n)
        noise = np.tan(np.pi * cfg.label_noise) * rng.normal(size=n)
        return truth, hidden, (truth + cue + noise > 0).astype(np.int64)
    if cfg.latent != "clusters":
        raise ValueError(f"unknown latent {cfg.latent!r}; use 'clusters' or 'continuous'")
    cluster, label = _clusters(rng, n, cfg)
    if cfg.hidden_weight:
        flip = label != cluster
        label = ((2 * cluster - 1) + cue > 0).astype(np.int64)
        label = np.where(flip, 1 - label, label)
    return _bimodal(rng, cluster, cfg.cluster_separation), hidden, label


def _linear_items(rng: np.random.Generator, n: int, cfg: SynthConfig, mix: np.ndarray):
    truth, hidden, label = _linear_truth(rng, n, cfg)
    nuisance, seen = _nuisance(rng, n, cfg)
    latent = np.concatenate(
        [(cfg.truth_salience * truth)[:, None], seen[:, None], _distractors(rng, n, cfg),
         (cfg.hidden_salience * hidden)[:, None] if cfg.hidden_weight else np.zeros((n, 0))], axis=1
    )
    score = cfg.weak_access * truth + cfg.nuisance_weight * nuisance + cfg.weak_noise * rng.normal(size=n)
    return _strong_view(rng, latent, mix), _weak_view(rng, score, cfg), label


def _nonlinear_items(rng: np.random.Generator, n: int, cfg: SynthConfig, mix: np.ndarray):
    """The cluster is the XOR of two bimodal coordinates: a linear strong head cannot find it."""
    cluster, label = _clusters(rng, n, cfg)
    first = rng.integers(0, 2, size=n)
    second = first ^ cluster
    u1 = _bimodal(rng, first, cfg.cluster_separation)
    u2 = _bimodal(rng, second, cfg.cluster_separation)
    nuisance, seen = _nuisance(rng, n, cfg)
    latent = np.concatenate(
        [cfg.truth_salience * np.stack([u1, u2], axis=1), seen[:, None], _distractors(rng, n, cfg)], axis=1
    )
    # The weak model gets a precomputed (noisy) XOR score: it has the concept, not the geometry.
    xor_score = np.tanh(u1) * np.tanh(u2) * -1.0 * cfg.cluster_separation
    score = cfg.weak_access * xor_score + cfg.nuisance_weight * nuisance + cfg.weak_noise * rng.normal(size=n)
    return _strong_view(rng, latent, mix), _weak_view(rng, score, cfg), label


def _pairwise_items(rng: np.random.Generator, n: int, cfg: SynthConfig, mix: np.ndarray):
    """Two responses each with a latent quality and a length; label 1 means 'second is better'.

    The strong view is [response A, response B] in the same rotated space; the weak judge
    prefers the longer response (the nuisance) and the first position.
    """
    cluster, label = _clusters(rng, n, cfg)
    quality_gap = _bimodal(rng, cluster, cfg.cluster_separation)
    base = rng.normal(size=n)
    quality_a, quality_b = base - quality_gap / 2, base + quality_gap / 2
    length_a, length_b = rng.normal(size=n), rng.normal(size=n)
    rho = cfg.nuisance_visibility
    side_noise = np.sqrt(max(0.0, 1 - rho**2))

    def response(quality: np.ndarray, length: np.ndarray) -> np.ndarray:
        seen_length = rho * length + side_noise * rng.normal(size=n)
        latent = np.concatenate(
            [(cfg.truth_salience * quality)[:, None], seen_length[:, None], _distractors(rng, n, cfg)], axis=1
        )
        return _strong_view(rng, latent, mix)

    strong = np.concatenate([response(quality_a, length_a), response(quality_b, length_b)], axis=1)
    position_bias = -0.3
    score = (
        cfg.weak_access * (quality_b - quality_a)
        + cfg.nuisance_weight * (length_b - length_a) / np.sqrt(2)
        + position_bias
        + cfg.weak_noise * rng.normal(size=n)
    )
    return strong, _weak_view(rng, score, cfg), label


STRUCTURES: dict[str, Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
    "linear": _linear_items,
    "nonlinear": _nonlinear_items,
    "pairwise": _pairwise_items,
}


def generate(name: str, cfg: SynthConfig, description: str = "") -> Task:
    """Build the whole task deterministically from cfg.data_seed."""
    if cfg.structure not in STRUCTURES:
        raise ValueError(f"unknown structure {cfg.structure!r}; use one of {sorted(STRUCTURES)}")
    rng = np.random.default_rng(cfg.data_seed)
    width = cfg.strong_dim // 2 if cfg.structure == "pairwise" else cfg.strong_dim
    mix = _rotation(rng, width)
    make = STRUCTURES[cfg.structure]
    splits: dict[str, Split] = {}
    sizes = {"train_label": cfg.n_train_label, "train_unlabel": cfg.n_train_unlabel, "test": cfg.n_test}
    for split, n in sizes.items():
        strong, weak, label = make(rng, n, cfg, mix)
        ids = [f"{split}-{i}" for i in range(n)]
        splits[split] = features_split(ids, strong, weak, label)
    meta = TaskMeta(name=name, kind="features", description=description, source=f"synthetic:{cfg.structure}")
    return Task(meta=meta, splits=splits)
