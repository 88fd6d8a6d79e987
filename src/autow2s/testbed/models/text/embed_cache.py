"""Encoder features cached on disk by content hash, so seeds and experiments never re-encode.

Each vector is keyed by sha256(model key + text). Vectors live in append-only shards under
<cache dir>/embeddings/<model key>/; a shard is written to a temporary name and renamed, so
parallel processes (pytest -n 2, several researchers) never see half a shard.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from autow2s.testbed.cache import default_cache_dir

PROGRESS_MIN_TEXTS = 512  # show a progress bar when at least this many texts need encoding
CHUNK = 256


def text_key(model_key: str, text: str) -> bytes:
    return hashlib.sha256(f"{model_key}\x00{text}".encode()).digest()


class EmbeddingStore:
    """Vectors of one encoder, in memory and on disk."""

    def __init__(self, model_key: str, root: Path | None = None) -> None:
        self.model_key = model_key
        digest = hashlib.sha256(model_key.encode()).hexdigest()[:24]
        self.directory = (root or default_cache_dir()) / "embeddings" / digest
        self._vectors: dict[bytes, np.ndarray] = {}
        self._shards_read: set[str] = set()

    def _read_new_shards(self) -> None:
        if not self.directory.is_dir():
            return
        for shard in sorted(self.directory.glob("shard-*.npz")):
            if shard.name in self._shards_read:
                continue
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, vectors = data["keys"], data["vectors"]
            except (OSError, ValueError, KeyError):
                continue  # a damaged shard only costs a re-encode
            for key, vector in zip(keys, vectors):
                self._vectors[bytes(key)] = vector
            self._shards_read.add(shard.name)

    def _write_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}.npz"
        handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=self.directory)
        os.close(handle)
        try:
            np.savez(tmp, keys=np.array(keys, dtype="S32"), vectors=vectors.astype(np.float32))
            os.replace(tmp, self.directory / name)
            self._shards_read.add(name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def embed(self, texts: Sequence[str], encode: Callable[[list[str]], np.ndarray], *, label: str = "encoding") -> np.ndarray:
        """Vectors for `texts`, encoding (and storing) only those never seen before."""
        keys = [text_key(self.model_key, text) for text in texts]
        if any(key not in self._vectors for key in keys):
            self._read_new_shards()
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts):
            if key not in self._vectors and key not in missing:
                missing[key] = text
        if missing:
            self._encode_missing(list(missing.keys()), list(missing.values()), encode, label)
        return np.stack([self._vectors[key] for key in keys]).astype(np.float32)

    def _encode_missing(self, keys: list[bytes], texts: list[str], encode: Callable[[list[str]], np.ndarray],
                        label: str) -> None:
        chunks = [(keys[i : i + CHUNK], texts[i : i + CHUNK]) for i in range(0, len(texts), CHUNK)]
        if len(texts) < PROGRESS_MIN_TEXTS:
            for chunk_keys, chunk_texts in chunks:
                self._store(chunk_keys, encode(chunk_texts))
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=Console(stderr=True), transient=True) as progress:
            bar = progress.add_task(f"{label} {len(texts)} texts (cached afterwards)", total=len(texts))
            for chunk_keys, chunk_texts in chunks:
                self._store(chunk_keys, encode(chunk_texts))
                progress.advance(bar, len(chunk_texts))

    def _store(self, keys: list[bytes], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        self._write_shard(keys, vectors)
        for key, vector in zip(keys, vectors):
            self._vectors[key] = vector


_STORES: dict[tuple[str, str], EmbeddingStore] = {}


def embedding_store(model_key: str) -> EmbeddingStore:
    """One store per (cache dir, model) per process, so repeated calls hit memory."""
    root = default_cache_dir()
    key = (str(root), model_key)
    if key not in _STORES:
        _STORES[key] = EmbeddingStore(model_key, root)
    return _STORES[key]
