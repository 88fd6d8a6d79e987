"""Model backends by name. Each turns (task view, seed, hparams) into a fresh Student."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError, UnknownNameError
from autow2s.testbed.models.base import Backend, Student
from autow2s.testbed.models.head_config import HeadConfig
from autow2s.testbed.tasks.dataset import Split


@dataclass(frozen=True)
class FeatureHeadBackend:
    """A torch head on one view ('strong' or 'weak') of a features task."""

    name: str
    defaults: HeadConfig
    kinds: tuple[str, ...] = ("features",)

    def config(self, **hparams: Any) -> HeadConfig:
        return self.defaults.with_overrides(**hparams)

    def inputs(self, split: Split, view: str) -> np.ndarray:
        array = split.strong if view == "strong" else split.weak
        if array is None:
            raise AutoW2SError(f"backend {self.name!r} needs feature vectors; this split has none")
        return array

    def make(self, *, example: Any, seed: int, **hparams: Any) -> Student:
        from autow2s.testbed.models.heads import TorchHead  # torch only when a head is built (the lab starts without)

        return TorchHead(int(np.asarray(example).shape[1]), self.config(**hparams), seed)

    def load(self, *, example: Any, arrays: dict[str, np.ndarray], **hparams: Any) -> Student:
        from autow2s.testbed.models.heads import TorchHead

        return TorchHead(int(np.asarray(example).shape[1]), self.config(**hparams), seed=0).load_state_arrays(arrays)

    def cache_config(self, **hparams: Any) -> dict[str, Any]:
        config = self.config(**hparams).to_dict()
        for key in ("device", "threads"):  # results do not depend on where they were computed
            config.pop(key)
        return {"backend": self.name, **config}


BACKENDS: dict[str, Backend] = {
    "mlp": FeatureHeadBackend("mlp", HeadConfig(arch="mlp")),
    "linear": FeatureHeadBackend("linear", HeadConfig(arch="linear", lr=1e-2, epochs=60, patience=8)),
}


def _register_text_backends() -> None:
    """Text backends import their heavy libraries (transformers, peft) only when a model is built."""
    from autow2s.testbed.models.text import text_backends

    BACKENDS.update(text_backends())


_register_text_backends()


# (strong, weak) when the user names none: heads on feature vectors, MiniLM vs TF-IDF on text.
DEFAULT_BACKENDS: dict[str, tuple[str, str]] = {
    "features": ("mlp", "linear"),
    "binary": ("encoder", "tfidf"),
    "pairwise": ("encoder", "tfidf"),
}


def default_backend(task_kind: str, role: str, task_name: str | None = None) -> str:
    """The default backend for a task (its own pair if it names one, else its kind's); role is 'strong' or 'weak'.

    Real-data tasks name their pair (mpnet vs TF-IDF): MiniLM-L6 is too close to TF-IDF on them for a gap.
    """
    from autow2s.testbed.tasks.real import SPECS

    if task_name in SPECS:
        spec = SPECS[task_name]
        return spec.strong if role == "strong" else spec.weak
    strong, weak = DEFAULT_BACKENDS[task_kind]
    return strong if role == "strong" else weak


def register_backend(backend: Backend) -> None:
    BACKENDS[backend.name] = backend


def _variant(name: str) -> Backend | None:
    """`NAME:ARG` picks a registered backend on another model, e.g. `hf-lm:Qwen/Qwen3-4B-Base`."""
    base, _, arg = name.partition(":")
    backend = BACKENDS.get(base)
    if not arg or backend is None or not hasattr(backend, "with_model"):
        return None
    return backend.with_model(arg)


def get_backend(name: str, task_kind: str) -> Backend:
    backend = BACKENDS.get(name) or _variant(name)
    if backend is None:
        raise UnknownNameError(
            f"unknown model backend {name!r}; known backends: {', '.join(sorted(BACKENDS))} "
            "(text backends also take a model: encoder:PATH, hf-lm:PATH_OR_HUB_NAME)"
        )
    if task_kind not in backend.kinds:
        raise AutoW2SError(
            f"backend {name!r} works on {'/'.join(backend.kinds)} tasks, not {task_kind!r}; "
            f"backends for {task_kind!r} tasks: "
            f"{', '.join(sorted(n for n, b in BACKENDS.items() if task_kind in b.kinds)) or 'none yet'}"
        )
    return backend
