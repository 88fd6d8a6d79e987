"""Real pretrained models on 2 CPU cores: encoder texts/s, and SmolLM2 LoRA train/infer tokens/s.

    .venv/bin/python benchmarks/real_models.py [--texts 256] [--runs 3] [--skip-lm]

Encoders: texts/s of autow2s's feature path (EmbeddingStore: batched, content-hashed, written to a
fresh cache) against plain `SentenceTransformer.encode` on the same texts in the same process;
each measurement is repeated and the median kept, and a warm (cached) pass is timed too.
SmolLM2-135M: LoRA training and label-token inference tokens/s through the hf-lm backend.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def _texts(n: int) -> list[str]:
    from autow2s.testbed.tasks.real import SPECS, Sizes, build

    task = build(SPECS["rt-sentiment"], 0, sizes=Sizes(train_label=n // 4, train_unlabel=n // 2, test=n - 3 * (n // 4)))
    return [f"Question: {r['question']}\nAnswer: {r['choice']}" for s in task.splits.values() for r in s.rows][:n]


def bench_encoder(name: str, texts: list[str], runs: int) -> dict[str, float]:
    from sentence_transformers import SentenceTransformer

    from autow2s.testbed.models.registry import get_backend
    from autow2s.testbed.models.text.embed_cache import EmbeddingStore
    from autow2s.testbed.models.text.encoder import load_sentence_encoder

    backend = get_backend(name, "binary")
    path = backend.model_path()
    ours = load_sentence_encoder(path, backend.layers, backend.max_seq_length, "cpu")
    plain = SentenceTransformer(path, device="cpu")
    plain.max_seq_length = backend.max_seq_length
    plain.encode(texts[:8])  # warm-up: first-call allocations are not what we measure
    cold, warm, base = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            store = EmbeddingStore(backend.model_key(), root=__import__("pathlib").Path(cache))
            encode = lambda batch: ours.encode(batch, batch_size=backend.batch_size, convert_to_numpy=True)  # noqa: E731
            start = time.perf_counter()
            store.embed(texts, encode)
            cold.append(len(texts) / (time.perf_counter() - start))
            start = time.perf_counter()
            store.embed(texts, encode)
            warm.append(len(texts) / (time.perf_counter() - start))
        start = time.perf_counter()
        plain.encode(texts, batch_size=backend.batch_size, convert_to_numpy=True)
        base.append(len(texts) / (time.perf_counter() - start))
    return {"ours_cold": statistics.median(cold), "ours_warm": statistics.median(warm),
            "plain": statistics.median(base)}


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
    parser.add_argument("--lm-rows", type=int, default=32)
    parser.add_argument("--skip-lm", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    texts = _texts(args.texts)
    for name in ("mpnet", "minilm"):
        figures = bench_encoder(name, texts, args.runs)
        print(f"{name}: {len(texts)} texts, median of {args.runs}: autow2s (cold cache) {figures['ours_cold']:.1f} "
              f"texts/s, plain SentenceTransformer.encode {figures['plain']:.1f} texts/s "
              f"(ratio {figures['ours_cold'] / figures['plain']:.2f}); cached {figures['ours_warm']:.0f} texts/s "
              f"({figures['ours_warm'] / figures['plain']:.0f}x plain)")
    if not args.skip_lm:
        lm = bench_smollm2(args.lm_rows)
        print(f"smollm2: {lm['rows']} rows, {lm['tokens']} tokens: LoRA training {lm['train_tok_s']:.1f} tokens/s "
              f"({lm['train_s']:.1f} s/epoch), inference {lm['infer_tok_s']:.1f} tokens/s ({lm['infer_s']:.1f} s)")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
