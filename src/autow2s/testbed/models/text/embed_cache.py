"""Encoder features cached on disk by content hash, so seeds and experiments never re-encode.

Each vector is keyed by sha256(model key + text). Vectors live in append-only shards under
<cache dir>/embeddings/<model key>/; a shard is written to a temporary name and renamed, so
parallel processes (pytest -n 2, several researchers) never see half a shard.

A prepared text task carries its own texts' vectors in its public view (`public/features/`,
written by `exporting_embeddings` during `autow2s prepare`), and `load_public` registers that
folder as a read-only root: a sandboxed experiment or verified run then encodes nothing, instead
of spending minutes on mpnet in every researcher's workspace. The vectors are those of the view's
own public texts, so they tell a method nothing the texts do not.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from autow2s.testbed.cache import default_cache_dir

PROGRESS_MIN_TEXTS = 512  # show a progress bar when at least this many texts need encoding
CHUNK = 256


def text_key(model_key: str, text: str) -> bytes:
    return hashlib.sha256(f"{model_key}\x00{text}".encode()).digest()


READONLY_ROOTS: list[Path] = []  # public views' features folders, read but never written (load_public)
_EXPORT: dict[str, dict[bytes, np.ndarray]] | None = None  # model key -> vectors, while exporting_embeddings runs


def add_readonly_root(root: Path) -> None:
    if root not in READONLY_ROOTS:
        READONLY_ROOTS.append(root)


@contextmanager
def exporting_embeddings(root: Path) -> Iterator[None]:
    """Every vector any store returns inside the block is also written to ROOT (one shard per encoder)."""
    global _EXPORT
    _EXPORT = {}
    try:
        yield
        for model_key, vectors in _EXPORT.items():
            if vectors:
                EmbeddingStore(model_key, root)._write_shard(list(vectors), np.stack(list(vectors.values())))
    finally:
        _EXPORT = None


def _subdir(model_key: str) -> str:
    return hashlib.sha256(model_key.encode()).hexdigest()[:24]


class EmbeddingStore:
    """Vectors of one encoder, in memory and on disk."""

    def __init__(self, model_key: str, root: Path | None = None) -> None:
        self.model_key = model_key
        self.directory = (root or default_cache_dir()) / "embeddings" / _subdir(model_key)
        self._vectors: dict[bytes, np.ndarray] = {}
        self._shards_read: set[str] = set()

    def _read_new_shards(self) -> None:
        readonly = [root / "embeddings" / _subdir(self.model_key) for root in READONLY_ROOTS]
        for shard in [p for d in (self.directory, *readonly) if d.is_dir() for p in sorted(d.glob("shard-*.npz"))]:
            if str(shard) in self._shards_read:
                continue
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, vectors = data["keys"], data["vectors"]
            except (OSError, ValueError, KeyError):
                continue  # a damaged shard only costs a re-encode
            for key, vector in zip(keys, vectors):
                # numpy's S32 drops trailing NUL bytes, and one sha256 digest in 256 ends with one
                self._vectors[bytes(key).ljust(32, b"\x00")] = vector
            self._shards_read.add(str(shard))

    def _write_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}.npz"
        handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=self.directory)
        os.close(handle)
        try:
            np.savez(tmp, keys=np.array(keys, dtype="S32"), vectors=vectors.astype(np.float32))
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a task view's vectors from jobs run as their own uid
            os.replace(tmp, self.directory / name)
            self._shards_read.add(str(self.directory / name))
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
        if _EXPORT is not None:
            _EXPORT.setdefault(self.model_key, {}).update((key, self._vectors[key]) for key in keys)
        return np.stack([self._vectors[key] for key in keys]).astype(np.float32)

    def _encode_missing(self, keys: list[bytes], texts: list[str], encode: Callable[[list[str]], np.ndarray],
                        label: str) -> None:
        # Longest first, so each chunk (and each batch inside it) holds texts of similar length: less padding,
        # and the bar's time estimate is pessimistic early rather than late.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        keys, texts = [keys[i] for i in order], [texts[i] for i in order]
        chunks = [(keys[i : i + CHUNK], texts[i : i + CHUNK]) for i in range(0, len(texts), CHUNK)]
        if len(texts) < PROGRESS_MIN_TEXTS:
            for chunk_keys, chunk_texts in chunks:
                self._store(chunk_keys, encode(chunk_texts))
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            Task,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class TextsPerSecond(ProgressColumn):
            """How fast encoding goes, so a user can tell a slow machine from a stuck one."""

            def render(self, task: Task) -> Text:
                speed = task.finished_speed or task.speed
                return Text("…" if speed is None else f"{speed:.1f} texts/s")

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextsPerSecond(),
                      TimeRemainingColumn(), console=Console(stderr=True), transient=True) as progress:
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
