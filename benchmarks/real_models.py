"""Real pretrained models on 2 CPU cores: encoder texts/s old path vs new, ceilings; SmolLM2 LoRA tokens/s.

    .venv/bin/python benchmarks/real_models.py [--texts 256] [--runs 3] [--ceiling] [--skip-lm]

Encoders: texts/s of autow2s's feature path (EmbeddingStore, written to a fresh cache each run) on
the same task rows, in one process, interleaved run by run, median of --runs:
- `before`: what autow2s did before issue 26: torch `SentenceTransformer.encode`, each text
  prefixed with the task's constant question ("Question: … Answer: <snippet>");
- `torch, answer only`: the same without the constant prefix;
- `onnx fp32`: ONNX Runtime, graph optimisation on, batches sorted by length;
- `onnx int8` (the `mpnet` backend now): the same with int8 dynamic quantisation.
--ceiling also trains the ceiling (the strong model on ground truth, 3 seeds) on a small
rt-sentiment instance from each variant's features: int8 is kept only if its ceiling stays
within 0.01 accuracy of fp32's (issue 26).
SmolLM2-135M: LoRA training and label-token inference tokens/s through the hf-lm backend.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = {  # name -> (runtime, question prefixed to each text)
    "before (torch, question prefix)": ("torch", True),
    "torch, answer only": ("torch", False),
    "onnx fp32, answer only": ("onnx", False),
    "onnx int8, answer only (mpnet now)": ("onnx-int8", False),
}


def _rows(n: int) -> list[dict]:
    from autow2s.testbed.tasks.real import SPECS, Sizes, build

    task = build(SPECS["rt-sentiment"], 0, sizes=Sizes(train_label=n // 4, train_unlabel=n // 2, test=n - 3 * (n // 4)))
    return [r for s in task.splits.values() for r in s.rows][:n]


def _backend(runtime: str, prefix: bool):
    from autow2s.testbed.models.registry import get_backend

    return dataclasses.replace(get_backend("mpnet", "binary"), runtime=runtime, include_question=prefix,
                               name=f"mpnet-{runtime}-{'qa' if prefix else 'a'}")


def bench_encoders(rows: list[dict], runs: int) -> dict[str, float]:
    """Median texts/s per variant, from an empty cache each run; the variants interleaved run by run."""
    from autow2s.testbed.models.text.common import encoder_texts
    from autow2s.testbed.models.text.embed_cache import EmbeddingStore

    speeds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for runtime, prefix in VARIANTS.values():  # warm-up: load, export and quantise once, not timed
        backend = _backend(runtime, prefix)
        with tempfile.TemporaryDirectory() as cache:
            EmbeddingStore(backend.model_key(), root=Path(cache)).embed(
                [t for r in rows[:8] for t in encoder_texts(r, prefix)], _encode_fn(backend))
    for _ in range(runs):
        for name, (runtime, prefix) in VARIANTS.items():
            backend = _backend(runtime, prefix)
            texts = [t for r in rows for t in encoder_texts(r, prefix)]
            with tempfile.TemporaryDirectory() as cache:
                store = EmbeddingStore(backend.model_key(), root=Path(cache))
                start = time.perf_counter()
                store.embed(texts, _encode_fn(backend))
                speeds[name].append(len(texts) / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in speeds.items()}


def _encode_fn(backend):
    from autow2s.testbed.models.text.encoder import load_onnx_encoder, load_sentence_encoder

    if backend.runtime == "torch":
        model = load_sentence_encoder(backend.model_path(), None, backend.max_seq_length, "cpu")
        return lambda batch: model.encode(batch, batch_size=backend.batch_size, convert_to_numpy=True)
    model = load_onnx_encoder(backend.model_path(), backend.runtime, backend.max_seq_length)
    return lambda batch: model.encode(batch, batch_size=backend.batch_size)


def bench_ceilings(seeds: list[int], size: int, with_before: bool) -> dict[str, list[float]]:
    """Ceiling accuracy per seed from each variant's features, on one small rt-sentiment instance."""
    from autow2s.testbed.cache import ArtifactCache
    from autow2s.testbed.models.registry import register_backend
    from autow2s.testbed.tasks.real import SPECS, Sizes, build
    from autow2s.testbed.teachers import ceiling_probs

    task = build(SPECS["rt-sentiment"], 0, sizes=Sizes(train_label=100, train_unlabel=size, test=size))
    labels = task.labels("test")
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        cache = ArtifactCache(Path(cache_dir))
        for name, (runtime, prefix) in VARIANTS.items():
            if (runtime == "torch" and not with_before) or name.startswith("torch"):
                continue  # torch answer-only: fp32 on ONNX Runtime is the same numbers (to 1e-6), faster
            backend = _backend(runtime, prefix)
            register_backend(backend)
            out[name] = [float(np.mean((ceiling_probs(task, seed, cache, backend=backend.name) >= 0.5) == labels))
                         for seed in seeds]
    return out


def bench_smollm2(n_rows: int) -> dict[str, float]:
    from autow2s.testbed.models.registry import get_backend
    from autow2s.testbed.models.text.hf_lm import training_tokens
    from autow2s.testbed.tasks.real import SPECS, Sizes, build

    task = build(SPECS["tweet-sentiment"], 0, sizes=Sizes(train_label=n_rows // 2, train_unlabel=n_rows // 2, test=2))
    rows = task.split("train_label").rows + task.split("train_unlabel").rows
    labels = np.concatenate([task.labels("train_label"), task.labels("train_unlabel")]).astype(np.float32)
    student = get_backend("smollm2", "binary").make(example=rows, seed=0, epochs=1, batch_size=8, lora_r=8,
                                                    lora_alpha=16)
    student.predict_proba(rows[:2])  # loads (de-quantises) the GGUF once, not timed
    tokens = training_tokens(student, rows)
    start = time.perf_counter()
    student.fit(rows, labels)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    student.predict_proba(rows)
    infer_s = time.perf_counter() - start
    return {"rows": len(rows), "tokens": tokens, "train_tok_s": tokens / train_s, "infer_tok_s": tokens / infer_s,
            "train_s": train_s, "infer_s": infer_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ceiling", action="store_true", help="also compare the ceilings each variant gives")
    parser.add_argument("--ceiling-size", type=int, default=600, help="train_unlabel and test items for --ceiling")
    parser.add_argument("--ceiling-before", action="store_true",
                        help="with --ceiling: the `before` variant's ceiling too (slow: torch with the prefix)")
    parser.add_argument("--skip-speed", action="store_true", help="leave out the texts/s comparison")
    parser.add_argument("--lm-rows", type=int, default=32)
    parser.add_argument("--skip-lm", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    speeds = {} if args.skip_speed else bench_encoders(_rows(args.texts), args.runs)
    before = speeds.get("before (torch, question prefix)", 0.0)
    for name, speed in speeds.items():
        print(f"mpnet {name}: {speed:.1f} texts/s ({speed / before:.2f}x before); {args.texts} rows, median of "
              f"{args.runs}")
    if args.ceiling:
        seeds = [42, 43, 44]
        ceilings = bench_ceilings(seeds, args.ceiling_size, args.ceiling_before)
        for name, values in ceilings.items():
            print(f"ceiling, {name}: {np.mean(values):.3f} (seeds {seeds}: {', '.join(f'{v:.3f}' for v in values)})")
        fp32, int8 = ceilings["onnx fp32, answer only"], ceilings["onnx int8, answer only (mpnet now)"]
        diff = [b - a for a, b in zip(fp32, int8)]
        print(f"ceiling int8 - fp32, paired by seed: {np.mean(diff):+.4f} (per seed {', '.join(f'{d:+.3f}' for d in diff)})")
    if not args.skip_lm:
        lm = bench_smollm2(args.lm_rows)
        print(f"smollm2: {lm['rows']} rows, {lm['tokens']} tokens: LoRA training {lm['train_tok_s']:.1f} tokens/s "
              f"({lm['train_s']:.1f} s/epoch), inference {lm['infer_tok_s']:.1f} tokens/s ({lm['infer_s']:.1f} s)")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
