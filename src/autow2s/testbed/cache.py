"""Content-addressed store of trusted artifacts (weak teachers, ceilings) keyed by their config.

A hit is only a hit when the stored config equals the requested one and every payload file
still has the digest recorded at write time; anything else is dropped and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "AUTOW2S_CACHE_DIR"


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "autow2s"


def config_key(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class CacheCorruption(UserWarning):
    """A cache entry did not match what it claimed; it was discarded."""


class ArtifactCache:
    """Arrays stored under root/kind/key/ with a meta.json that records config and digests."""

    def __init__(self, root: str | Path | None = None, *, enabled: bool = True) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled

    def entry_dir(self, kind: str, config: dict[str, Any]) -> Path:
        return self.root / kind / config_key(config)

    def load(self, kind: str, config: dict[str, Any]) -> dict[str, np.ndarray] | None:
        if not self.enabled:
            return None
        entry = self.entry_dir(kind, config)
        meta_path = entry / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("config") != json.loads(json.dumps(config, default=str)):
                raise ValueError("stored config differs from the requested one")
            payload = entry / "arrays.npz"
            if _file_digest(payload) != meta.get("sha256"):
                raise ValueError("payload digest mismatch")
            with np.load(payload, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"discarding corrupt cache entry {entry} ({exc}); recomputing", CacheCorruption, stacklevel=2)
            shutil.rmtree(entry, ignore_errors=True)
            return None

    def store(self, kind: str, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if not self.enabled:
            return
        entry = self.entry_dir(kind, config)
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
        try:
            # numpy's stub: a **dict could fill savez's allow_pickle: bool keyword, so mypy rejects it
            np.savez(staging / "arrays.npz", **arrays)  # type: ignore[arg-type]
            meta = {"kind": kind, "config": config, "sha256": _file_digest(staging / "arrays.npz")}
            (staging / "meta.json").write_text(json.dumps(meta, sort_keys=True, default=str, indent=1))
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
