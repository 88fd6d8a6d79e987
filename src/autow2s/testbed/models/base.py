"""The backend interface: small enough that text backends slot in without changing methods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from autow2s.testbed.tasks.dataset import Split

VIEWS: tuple[str, ...] = ("strong", "weak")


@dataclass
class FitReport:
    """What one fit did, for logs and tests."""

    epochs_run: int
    best_epoch: int
    best_val_loss: float
    history: list[float] = field(default_factory=list)


@runtime_checkable
class Student(Protocol):
    """A trainable model. `inputs` is whatever ctx.inputs(split) returned for this task kind."""

    def fit(
        self,
        inputs: Any,
        targets: np.ndarray,
        *,
        loss: Any = "xent",
        weights: np.ndarray | None = None,
        **loss_params: float,
    ) -> FitReport: ...

    def predict_proba(self, inputs: Any) -> np.ndarray: ...

    def features(self, inputs: Any) -> np.ndarray: ...

    def state_arrays(self) -> dict[str, np.ndarray]: ...


class Backend(Protocol):
    """Builds students of one family (a torch head on features, an encoder, an LM).

    `inputs` picks what a model of this family reads from a split (a feature matrix, text rows);
    `make` builds an untrained student shaped for such inputs; `load` rebuilds a trained one
    from `state_arrays()`; `cache_config` is what identifies its training in a cache key.
    """

    # read-only: the backends are frozen dataclasses
    @property
    def name(self) -> str: ...

    @property
    def kinds(self) -> tuple[str, ...]: ...

    def inputs(self, split: Split, view: str) -> Any: ...

    def make(self, *, example: Any, seed: int, **hparams: Any) -> Student: ...

    def load(self, *, example: Any, arrays: dict[str, np.ndarray], **hparams: Any) -> Student: ...

    def cache_config(self, **hparams: Any) -> dict[str, Any]: ...


def subset(inputs: Any, rows: np.ndarray | Sequence[int]) -> Any:
    """Select rows of model inputs, whether a numpy array or a list of records."""
    if isinstance(inputs, np.ndarray):
        return inputs[np.asarray(rows)]
    return [inputs[int(i)] for i in rows]
