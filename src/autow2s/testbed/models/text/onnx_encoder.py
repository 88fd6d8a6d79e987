"""A sentence-transformers encoder run by ONNX Runtime: fp32 with graph optimisation, or int8.

Why: on 2 CPU cores the strong model's feature extraction is the long pole of a real task (mpnet,
110M parameters, encoded ~5-8 texts/s through torch with the question prefix). ONNX Runtime runs
the same graph ~1.5x faster in fp32; int8 dynamic quantisation of the weight matrices ~3x faster
(benchmarks/real_models.py; the ceiling it gives is checked against fp32 in docs/text_backends.md).

The graph is exported once per model (torch.onnx, the TorchScript exporter) and kept beside the
model's folder, or in the cache dir when that folder is read-only (a sandboxed job's view of the
fetch store). Pooling and normalisation follow the model's own modules.json, so a vector is the
one `SentenceTransformer.encode` gives (fp32: to ~1e-6).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError

RUNTIMES: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
# Bump when the export or the quantisation recipe changes: the file name (so the cache key) changes with it.
RECIPE = "v1"
# int8 dynamic quantisation of every weight matrix except the feed-forward down-projection
# (`output/dense`): its input, the GELU activations, has outlier channels that one per-tensor
# activation scale cannot hold (measured on mpnet: cosine to fp32 0.87 with it, 0.99 without).
# Activation x activation products (attention scores) stay fp32 too.
INT8_SKIP = re.compile(r"output/dense|attn/MatMul|attention/self/MatMul|pooler")


@dataclass(frozen=True)
class Pipeline:
    """What follows the transformer in the sentence-transformers folder: pooling, then maybe L2 normalisation."""

    pooling: str  # "mean" or "cls"
    normalize: bool


def read_pipeline(model_dir: Path) -> Pipeline:
    """The pooling and normalisation a sentence-transformers folder declares; other modules are refused."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return Pipeline("mean", False)  # a bare transformers folder: sentence-transformers mean-pools it
    modules = json.loads(modules_file.read_text())
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds[:1] != ["Transformer"] or any(k not in ("Transformer", "Pooling", "Normalize") for k in kinds):
        raise AutoW2SError(f"{model_dir}: modules {kinds} are not Transformer -> Pooling -> Normalize; "
                           "use the torch runtime for this encoder")
    pooling = "mean"
    for module in modules:
        if module["type"].endswith("Pooling"):
            config = json.loads((model_dir / module["path"] / "config.json").read_text())
            modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
            if modes == ["pooling_mode_mean_tokens"]:
                pooling = "mean"
            elif modes == ["pooling_mode_cls_token"]:
                pooling = "cls"
            else:
                raise AutoW2SError(f"{model_dir}: pooling {modes} is not supported by the ONNX runtime; use torch")
    return Pipeline(pooling, "Normalize" in kinds)


def _model_digest(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors",
                                                                                        ".bin", ".txt")):
        digest.update(f"{file.relative_to(model_dir)}:{file.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def _export_dirs(model_dir: Path) -> tuple[Path, Path]:
    """(beside the model, in the cache dir): a fetched model's graphs live beside it, in the fetch store, so
    they outlive test caches and sandboxed jobs (which see the store read-only) find them; others' in the cache."""
    from autow2s.testbed.cache import default_cache_dir
    from autow2s.testbed.fetch import fetch_dir

    cached = default_cache_dir() / "onnx" / f"{model_dir.name}-{_model_digest(model_dir)}"
    resolved = model_dir.resolve()
    if resolved.is_relative_to(fetch_dir().resolve()):
        return resolved.parent / "onnx", cached
    return cached, cached


def _can_write(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_target(directory: Path) -> Path:
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=directory)
    os.close(handle)
    return Path(tmp)


def _export_fp32(model_dir: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own line says what is happening; its weight-loading bar is noise
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    class LastHiddenState(torch.nn.Module):
        """The transformer by keyword arguments (models differ in their positional order) -> its last layer."""

        def __init__(self) -> None:
            super().__init__()
            self.model = AutoModel.from_pretrained(str(model_dir)).eval()

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    model = LastHiddenState().eval()
    example = tokenizer(["a short text", "a slightly longer text to export with"], padding=True, return_tensors="pt")
    axes = {0: "batch", 1: "tokens"}
    tmp = _atomic_target(target.parent)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on opsets and tracing are not the user's concern
            torch.onnx.export(model, (example["input_ids"], example["attention_mask"]), str(tmp),
                              input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
                              opset_version=17, dynamo=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _quantize_int8(fp32: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32), load_external_data=False).graph
    skip = [node.name for node in graph.node if node.op_type in ("MatMul", "Gemm") and INT8_SKIP.search(node.name)]
    tmp = _atomic_target(target.parent)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint at WARNING on the root logger
    try:
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=skip)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)


def onnx_model(model_dir: Path, runtime: str) -> Path:
    """The exported (and, for onnx-int8, quantised) graph of a model, made on first use."""
    if runtime not in RUNTIMES[1:]:
        raise AutoW2SError(f"unknown ONNX runtime {runtime!r}; choose one of {', '.join(RUNTIMES[1:])}")
    name = f"model-{'fp32' if runtime == 'onnx' else 'int8'}-{RECIPE}.onnx"
    beside, cached = _export_dirs(model_dir)
    for directory in dict.fromkeys((beside, cached)):
        if (directory / name).is_file():
            return directory / name
    try:
        import onnxruntime
    except ImportError:
        raise AutoW2SError("the onnx runtimes need onnxruntime and onnx: `pip install onnxruntime onnx`, or use "
                           "runtime 'torch'") from None
    directory = beside if _can_write(beside) else cached
    fp32, wanted = directory / f"model-fp32-{RECIPE}.onnx", directory / name
    with _locked(directory):
        if not fp32.is_file():
            print(f"autow2s: exporting {model_dir.name} to ONNX (once; about a minute on 2 cores)", file=sys.stderr)
            _export_fp32(model_dir, fp32)
        if not wanted.is_file():
            _quantize_int8(fp32, wanted)
            if runtime == "onnx-int8":
                fp32.unlink()  # 436 MB for mpnet that only the fp32 runtime reads; re-exported if ever asked for
    return wanted
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise AutoW2SError("the onnx runtimes need onnxruntime and onnx: `pip install onnxruntime onnx`, or use "
                           "runtime 'torch'") from None
    with _locked(directory):
        if not fp32.is_file():
            print(f"autow2s: exporting {model_dir.name} to ONNX (once; about a minute on 2 cores)", file=sys.stderr)
            _export_fp32(model_dir, fp32)
        if not wanted.is_file():
            _quantize_int8(fp32, wanted)
            if runtime == "onnx-int8":
                fp32.unlink()  # 436 MB for mpnet that only the fp32 runtime reads; re-exported if ever asked for
    return wanted


class OnnxSentenceEncoder:
    """`encode(texts)` as sentence-transformers does it, on an ONNX Runtime session."""

    def __init__(self, model_dir: Path, runtime: str, max_seq_length: int) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.path = onnx_model(model_dir, runtime)
        self.pipeline = read_pipeline(model_dir)
        self.max_seq_length = max_seq_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # its warnings about unused initialisers are noise here
        # Threads that spin while waiting for work burn the cores other processes need (a lab, researchers,
        # other jobs share them); blocking waits cost little at these batch sizes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = max(1, len(os.sched_getaffinity(0)))
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings in the order given; batches hold texts of similar length, so little is padding."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        lengths = [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_seq_length)["input_ids"]]
        order = np.argsort(lengths, kind="stable")[::-1]
        out: np.ndarray | None = None
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            vectors = self._batch([texts[int(i)] for i in index])
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[index] = vectors
        assert out is not None
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length,
                                 return_tensors="np")
        mask = encoded["attention_mask"].astype(np.int64)
        hidden: Any = self.session.run(None, {"input_ids": encoded["input_ids"].astype(np.int64),
                                               "attention_mask": mask})[0]
        if self.pipeline.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.pipeline.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.asarray(pooled, dtype=np.float32)
