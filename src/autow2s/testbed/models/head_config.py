"""A head's architecture and optimisation settings, importable without torch (the lab reads them at start-up)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from autow2s.errors import AutoW2SError


@dataclass(frozen=True)
class HeadConfig:
    """Architecture and optimisation of a head. Part of every cache key that trains one."""

    arch: str = "mlp"  # "mlp" or "linear"
    hidden: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    epochs: int = 30
    batch_size: int = 256
    val_frac: float = 0.15
    patience: int = 5
    device: str = "cpu"
    threads: int = 1  # torch intra-op threads while this head trains or predicts

    def with_overrides(self, **hparams: Any) -> HeadConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(hparams) - known)
        if unknown:
            raise AutoW2SError(f"unknown model hparams {unknown}; known: {sorted(known)}")
        return replace(self, **hparams)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
