"""Model backends by name. Each turns (task view, seed, hparams) into a fresh Student."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autow2s.errors import AutoW2SError, UnknownNameError
from autow2s.testbed.models.base import Student
from autow2s.testbed.models.heads import HeadConfig, TorchHead


@dataclass(frozen=True)
class FeatureHeadBackend:
    """A torch head on one view ('strong' or 'weak') of a features task."""

    name: str
    defaults: HeadConfig
    kinds: tuple[str, ...] = ("features",)

    def config(self, **hparams: Any) -> HeadConfig:
        return self.defaults.with_overrides(**hparams)

    def make(self, *, input_dim: int, seed: int, **hparams: Any) -> Student:
        return TorchHead(input_dim, self.config(**hparams), seed)

    def load(self, *, input_dim: int, arrays: dict[str, Any], **hparams: Any) -> TorchHead:
        return TorchHead(input_dim, self.config(**hparams), seed=0).load_state_arrays(arrays)


BACKENDS: dict[str, FeatureHeadBackend] = {
    "mlp": FeatureHeadBackend("mlp", HeadConfig(arch="mlp")),
    "linear": FeatureHeadBackend("linear", HeadConfig(arch="linear", lr=1e-2, epochs=60, patience=8)),
}


def get_backend(name: str, task_kind: str) -> FeatureHeadBackend:
    if name not in BACKENDS:
        raise UnknownNameError(f"unknown model backend {name!r}; known backends: {', '.join(sorted(BACKENDS))}")
    backend = BACKENDS[name]
    if task_kind not in backend.kinds:
        raise AutoW2SError(
            f"backend {name!r} works on {'/'.join(backend.kinds)} tasks, not {task_kind!r}; "
            "text tasks need a text backend (encoder, tfidf or hf-lm)"
        )
    return backend

