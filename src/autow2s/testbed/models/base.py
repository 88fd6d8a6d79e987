"""The backend interface: small enough that text backends slot in without changing methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


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


class Backend(Protocol):
    """Builds students of one family (a torch head on features, an encoder, an LM)."""

    name: str

    def make(self, *, input_dim: int, seed: int, **hparams: Any) -> Student: ...
