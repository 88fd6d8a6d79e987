"""Choose the torch device when a run starts; nothing here runs at import time."""

from __future__ import annotations

import torch

from autow2s.errors import AutoW2SError


def resolve_device(requested: str | None = None) -> torch.device:
    """'cpu' (the default), 'cuda' / 'cuda:N' when present, or 'auto' for CUDA if available."""
    choice = (requested or "cpu").lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AutoW2SError(f"device {requested!r} was asked for but CUDA is not available; use --device cpu")
        return torch.device(choice)
    if choice != "cpu":
        raise AutoW2SError(f"unknown device {requested!r}; use cpu, cuda, cuda:N or auto")
    return torch.device("cpu")
