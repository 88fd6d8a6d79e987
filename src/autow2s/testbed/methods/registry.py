"""The method registry. A method is `run(ctx) -> P(label = 1) on test`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError, UnknownNameError

RunFn = Callable[..., np.ndarray]

BUILTIN_MODULES = (
    "vanilla",
    "confident",
    "logconf",
    "product",
    "bootstrap",
    "knn_relabel",
    "smoothing",
    "ensemble",
    "ue_direction",
    "label_spreading",
    "self_training",
    "co_training",
    "composed",
)


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    run_fn: RunFn
    params: dict[str, Any] = field(default_factory=dict)
    source: str = "builtin"

    def run(self, ctx: Any) -> np.ndarray:
        return self.run_fn(ctx, **self.params)


METHODS: dict[str, Method] = {}


def register(name: str, description: str, **params: Any) -> Callable[[RunFn], RunFn]:
    """Decorator: register `run(ctx, **params)` under `name` with these default params."""

    def wrap(fn: RunFn) -> RunFn:
        METHODS[name] = Method(name=name, description=description, run_fn=fn, params=dict(params))
        return fn

    return wrap


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"autow2s.testbed.methods.{module}")


def builtin_methods() -> dict[str, Method]:
    _load_builtins()
    return dict(METHODS)


def _load_method_dir(path: Path) -> Method:
    source = path / "method.py" if path.is_dir() else path
    if not source.is_file():
        raise AutoW2SError(f"{path}: no method.py; a method directory holds method.py defining run(ctx)")
    module_name = f"autow2s_user_method_{abs(hash(str(source.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        raise AutoW2SError(f"{source}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(source.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report it in one line
        raise AutoW2SError(f"{source}: importing it failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(str(source.parent))
    run = getattr(module, "run", None)
    if not callable(run):
        raise AutoW2SError(f"{source}: defines no function run(ctx)")
    doc = (module.__doc__ or "").strip().splitlines()
    return Method(name=source.parent.name, description=doc[0] if doc else "", run_fn=run, source=str(source))


def load_method(name_or_path: str) -> Method:
    """A registered method name, or a path to a method directory (or its method.py)."""
    methods = builtin_methods()
    if name_or_path in methods:
        return methods[name_or_path]
    path = Path(name_or_path)
    if path.exists():
        return _load_method_dir(path)
    raise UnknownNameError(
        f"unknown method {name_or_path!r}; known methods: {', '.join(sorted(methods))} "
        "(or pass a path to a directory with method.py)"
    )
