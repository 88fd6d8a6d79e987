"""`tfidf`: hashed word n-grams with TF-IDF weighting and a linear classifier: the weak text model.

Hashing keeps the model a fixed set of arrays (idf and weights), with no vocabulary to ship, so
the trained weak teacher fits in public/model.npz. The classifier is trained in torch so that it
honours the same pluggable losses and sample weights as every other student.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.models.base import FitReport
from autow2s.testbed.models.text.common import TEXT_KINDS, check_rows, check_targets, meta_string
from autow2s.testbed.tasks.dataset import Split

if TYPE_CHECKING:  # torch loads when a student trains, not when the registry is read
    from autow2s.testbed.models.losses import LossFn


@dataclass(frozen=True)
class TfidfConfig:
    """Featurisation and optimisation of the linear model; part of the weak teacher's cache key."""

    n_features: int = 2**16
    ngram_max: int = 2
    analyzer: str = "word"  # "word" or "char_wb"
    lr: float = 0.05
    weight_decay: float = 1e-4  # L2 penalty on the weights
    epochs: int = 40
    batch_size: int = 128
    device: str = "cpu"  # accepted for interface parity; this model always runs on the CPU

    def with_overrides(self, **hparams: Any) -> TfidfConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(hparams) - known)
        if unknown:
            raise AutoW2SError(f"unknown tfidf hparams {unknown}; known: {sorted(known)}")
        return replace(self, **hparams)


def _row_text(row: dict[str, Any]) -> str:
    if "question" in row:
        return f"{row['question']} || {row['choice']}"
    # Pairwise: prefix each answer's n-grams so the model can tell A's words from B's.
    first = " ".join(f"A_{w}" for w in str(row["first"]).split())
    second = " ".join(f"B_{w}" for w in str(row["second"]).split())
    return f"{row['prompt']} || {first} || {second}"


class TfidfStudent:
    """Sparse TF-IDF features -> logistic regression, trained on any pluggable loss and sample weights."""

    def __init__(self, config: TfidfConfig, seed: int, kind: str) -> None:
        self.config = config
        self.seed = seed
        self.kind = kind
        self.idf: np.ndarray | None = None
        self.weight = np.zeros(config.n_features, dtype=np.float32)
        self.bias = np.zeros(1, dtype=np.float32)

    def _counts(self, inputs: Any):  # -> scipy.sparse.csr_matrix
        from sklearn.feature_extraction.text import HashingVectorizer

        rows, kind = check_rows(inputs)
        if kind != self.kind:
            raise AutoW2SError(f"this student was built for {self.kind} rows, got {kind} rows")
        vectorizer = HashingVectorizer(n_features=self.config.n_features, ngram_range=(1, self.config.ngram_max),
                                       analyzer=self.config.analyzer, alternate_sign=False, norm=None,
                                       token_pattern=r"(?u)\b\w+\b|[^\w\s]")
        return vectorizer.transform([_row_text(row) for row in rows])

    def features(self, inputs: Any):
        """L2-normalised TF-IDF rows (scipy CSR): the representation the weights act on."""
        from sklearn.preprocessing import normalize

        counts = self._counts(inputs)
        counts.data = np.log1p(counts.data)
        if self.idf is not None:
            counts = counts.multiply(self.idf[None, :]).tocsr()
        return normalize(counts).astype(np.float32)

    def fit(self, inputs: Any, targets: np.ndarray, *, loss: str | LossFn = "xent",
            weights: np.ndarray | None = None, **loss_params: float) -> FitReport:
        """Minibatch Adam. Sparse products run in scipy; torch only differentiates the loss."""
        import torch

        from autow2s.testbed.models.losses import get_loss

        counts = self._counts(inputs)
        target_array, weight_array = check_targets(targets, weights, counts.shape[0])
        document_freq = np.bincount(counts.indices, minlength=self.config.n_features)
        self.idf = (np.log((1 + counts.shape[0]) / (1 + document_freq)) + 1).astype(np.float32)
        matrix = self.features(inputs)
        loss_fn = get_loss(loss, **loss_params)
        sample_weights = weight_array if weight_array is not None else np.ones_like(target_array)
        params = np.zeros(self.config.n_features + 1, dtype=np.float64)  # weights, then the bias
        moment1, moment2 = np.zeros_like(params), np.zeros_like(params)
        n, generator = matrix.shape[0], np.random.default_rng(self.seed)
        total_steps = self.config.epochs * max(1, -(-n // self.config.batch_size))
        step, history = 0, []
        for _ in range(self.config.epochs):
            order, epoch_loss = generator.permutation(n), 0.0
            for start in range(0, n, self.config.batch_size):
                batch = order[start : start + self.config.batch_size]
                x = matrix[batch]
                logits = torch.tensor(x @ params[:-1] + params[-1], dtype=torch.float32, requires_grad=True)
                per_example = loss_fn(logits, torch.from_numpy(target_array[batch]), step / total_steps)
                batch_w = torch.from_numpy(sample_weights[batch])
                value = (per_example * batch_w).sum() / batch_w.sum().clamp_min(1e-12)
                value.backward()
                assert logits.grad is not None
                dlogits = logits.grad.numpy().astype(np.float64)
                grad = np.empty_like(params)
                grad[:-1] = x.T @ dlogits + 2 * self.config.weight_decay * params[:-1]
                grad[-1] = dlogits.sum()
                step += 1
                moment1 = 0.9 * moment1 + 0.1 * grad
                moment2 = 0.999 * moment2 + 0.001 * grad**2
                update = (moment1 / (1 - 0.9**step)) / (np.sqrt(moment2 / (1 - 0.999**step)) + 1e-8)
                params -= self.config.lr * update
                epoch_loss += float(value.detach()) * len(batch) / n
            history.append(epoch_loss)
        self.weight, self.bias = params[:-1].astype(np.float32), params[-1:].astype(np.float32)
        return FitReport(epochs_run=self.config.epochs, best_epoch=self.config.epochs - 1,
                         best_val_loss=float("nan"), history=history)

    def predict_proba(self, inputs: Any) -> np.ndarray:
        if self.idf is None:
            raise AutoW2SError("this student is not trained yet; call fit(inputs, targets) first")
        logits = self.features(inputs) @ self.weight + self.bias[0]
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64).reshape(-1)))

    def state_arrays(self) -> dict[str, np.ndarray]:
        if self.idf is None:
            raise AutoW2SError("this student is not trained yet; nothing to save")
        return {"idf": self.idf, "weight": self.weight, "bias": self.bias, "meta.kind": np.array(self.kind)}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> TfidfStudent:
        idf = np.asarray(arrays["idf"], dtype=np.float32)
        if idf.shape[0] != self.config.n_features:
            raise AutoW2SError(f"stored model has {idf.shape[0]} hashed features, config has {self.config.n_features}")
        self.idf, self.weight = idf, np.asarray(arrays["weight"], dtype=np.float32)
        self.bias = np.asarray(arrays["bias"], dtype=np.float32)
        return self


@dataclass(frozen=True)
class TfidfBackend:
    name: str = "tfidf"
    defaults: TfidfConfig = TfidfConfig()
    kinds: tuple[str, ...] = TEXT_KINDS

    def inputs(self, split: Split, view: str) -> list[dict[str, Any]]:
        if split.rows is None:
            raise AutoW2SError(f"backend {self.name!r} reads text rows; this split has none (is it a features task?)")
        return split.rows

    def make(self, *, example: Any, seed: int, **hparams: Any) -> TfidfStudent:
        return TfidfStudent(self.defaults.with_overrides(**hparams), seed, check_rows(example)[1])

    def load(self, *, example: Any, arrays: dict[str, np.ndarray], **hparams: Any) -> TfidfStudent:
        kind = meta_string(arrays, "meta.kind") or check_rows(example)[1]
        return TfidfStudent(self.defaults.with_overrides(**hparams), 0, kind).load_state_arrays(arrays)

    def cache_config(self, **hparams: Any) -> dict[str, Any]:
        config = asdict(self.defaults.with_overrides(**hparams))
        config.pop("device")
        return {"backend": self.name, **config}
