"""LoRA training and inference throughput of the hf-lm path, its correctness, and one real W2S run.

On a GPU machine (one prepared run; see benchmarks/README.md):
    python benchmarks/gpu_lora.py --out benchmarks/results/gpu_lora.json
On a CPU, to check the script works (tiny model, a few steps):
    python benchmarks/gpu_lora.py --tiny

What it measures, on a Qwen3-4B-shaped model built from its config (random weights, bf16):
1. the plain HF path (padded batches, full logits, gradient checkpointing): the reference;
2. the fast path (length-grouped or packed batches, LM head at the label position only, no
   recomputation when memory allows, optionally torch.compile);
3. prefill (inference) tokens/s;
4. correctness: plain vs fast loss curves on the same data and seed;
5. one W2S experiment end to end (arith-verify, MiniLM encoder vs TF-IDF, vanilla) on the device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autow2s.testbed.models.registry import get_backend
from autow2s.testbed.models.text.hf_lm import LMConfig, SharedBase
from autow2s.testbed.models.text.tiny import build_word_tokenizer, tiny_config

QWEN3_4B = dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                rope_theta=1_000_000.0, tie_word_embeddings=True)
H100_BF16_DENSE_TFLOPS = 989.0
REFERENCE = {"train_tokens_per_s": 7700, "prefill_tokens_per_s": 26000}
WORDS = [f"w{i}" for i in range(2000)]


def build_rows(n: int, length: int, rng: np.random.Generator) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Binary rows of about `length` word tokens each (±10%), with soft targets."""
    rows = []
    for i in range(n):
        words = rng.choice(WORDS, size=max(4, int(length * rng.uniform(0.9, 1.0)) - 12))
        rows.append({"id": i, "question": " ".join(words[:-3]), "choice": " ".join(words[-3:])})
    return rows, rng.uniform(0.05, 0.95, size=n).astype(np.float32)


def make_model(tiny: bool, device: torch.device, attn: str) -> tuple[Any, Any, int]:
    from transformers import AutoModelForCausalLM, Qwen3Config

    tokenizer = build_word_tokenizer(WORDS)
    config = tiny_config("qwen3", max(len(tokenizer), 64)) if tiny else Qwen3Config(**QWEN3_4B)
    config._attn_implementation = attn
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    n_params = sum(p.numel() for p in model.parameters())
    return model, tokenizer, n_params


def train_run(name: str, rows: list, targets: np.ndarray, seed: int, **hparams: Any) -> dict[str, Any]:
    backend = get_backend(f"hf-lm:{name}", "binary")
    student = backend.make(example=rows, seed=seed, **hparams)
    tokens = sum(len(s) for s in student._sequences(rows))
    sync()
    started = time.perf_counter()
    student.fit(rows, targets)
    sync()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return {"student": student, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "losses": list(student.step_losses), "peak_gib": peak}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def attempt(label: str, fn: Any) -> dict[str, Any] | None:
    try:
        return fn()
    except torch.cuda.OutOfMemoryError as exc:  # a fast variant that does not fit: say so, go on
        print(f"[{label}] out of memory: {str(exc)[:200]}", flush=True)
    except Exception as exc:  # noqa: BLE001 - the benchmark reports every variant it could not run
        print(f"[{label}] failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model on CPU: checks the script")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--steps", type=int, default=12, help="optimiser steps per timed training run")
    parser.add_argument("--skip-experiment", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_lora.json"))
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch, args.seq, args.steps = min(args.batch, 8), min(args.seq, 64), min(args.steps, 4)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    try:
        import flash_attn  # noqa: F401
        attn = "flash_attention_2"
    except ImportError:
        attn = "sdpa"
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
                              "torch": torch.__version__, "tiny": args.tiny, "attn": attn, "batch": args.batch,
                              "seq": args.seq, "steps": args.steps}
    model, tokenizer, n_params = make_model(args.tiny, device, attn)
    report["params"] = n_params
    name = "bench/qwen3-4b-shaped" if not args.tiny else "bench/tiny-qwen3"
    SharedBase.register(LMConfig(model=name, attn_implementation=attn), device, model, tokenizer)
    rng = np.random.default_rng(0)
    rows, targets = build_rows(args.batch * args.steps, args.seq, rng)
    common = dict(epochs=1, batch_size=args.batch, max_length=args.seq + 8, device=str(device), warmup_ratio=0.1,
                  lr=1e-4, attn_implementation=attn)
    runs: dict[str, dict[str, Any]] = {}
    plans = {
        "plain (padded, full logits, checkpointing)": dict(impl="padded", length_grouped=False, gradient_checkpointing=True),
        # Same batches as plain: only the compute path differs, so the loss curves must agree.
        "fast path, plain batches (correctness)": dict(impl="auto", length_grouped=False, gradient_checkpointing=False),
        "fast, checkpointing": dict(impl="auto", length_grouped=True, gradient_checkpointing=True),
        "fast, no recomputation": dict(impl="auto", length_grouped=True, gradient_checkpointing=False),
    }
    if not args.no_compile and device.type == "cuda":
        plans["fast, no recomputation, compiled"] = dict(impl="auto", length_grouped=True, compile=True)
    for label, plan in plans.items():
        result = attempt(label, lambda: train_run(name, rows, targets, seed=1, **common, **plan))
        if result is not None:
            runs[label] = result
            print(f"[{label}] {result['tokens_per_s']:.0f} train tokens/s, peak {result['peak_gib']:.1f} GiB", flush=True)
    report["train"] = {k: {x: v[x] for x in ("tokens", "seconds", "tokens_per_s", "peak_gib")} for k, v in runs.items()}
    plain_key = next(iter(plans))
    if plain_key in runs:
        plain_losses = np.array(runs[plain_key]["losses"])
        report["correctness"] = {}
        for label, result in runs.items():
            if "correctness" not in label:
                continue
            diff = np.abs(np.array(result["losses"]) - plain_losses)
            report["correctness"][label] = {"max_abs_loss_diff": float(diff.max()),
                                            "max_rel_loss_diff": float((diff / np.abs(plain_losses)).max())}
        best = max((v["tokens_per_s"] for k, v in runs.items() if k != plain_key and "correctness" not in k),
                   default=float("nan"))
        report["speedup_vs_plain"] = best / runs[plain_key]["tokens_per_s"]
        tflops = 6 * n_params * best / 1e12
        report["best_train_tflops_6N"] = tflops
        if device.type == "cuda":
            report["best_train_mfu_vs_h100_bf16_dense"] = tflops / H100_BF16_DENSE_TFLOPS
    any_run = next(iter(runs.values()), None)
    if any_run is not None:
        student = any_run["student"]
        infer_rows, _ = build_rows(args.batch * 8, args.seq, rng)
        tokens = sum(len(s) for s in student._sequences(infer_rows))
        sync()
        started = time.perf_counter()
        student.predict_proba(infer_rows)
        sync()
        report["prefill_tokens_per_s"] = tokens / (time.perf_counter() - started)
        print(f"[prefill] {report['prefill_tokens_per_s']:.0f} tokens/s", flush=True)
    for run in runs.values():
        run.pop("student", None)
    del model, runs
    SharedBase._instances.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if not args.skip_experiment:
        report["w2s_experiment"] = w2s_experiment(device, args.tiny)
    report["reference"] = REFERENCE
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))
    return 0


def w2s_experiment(device: torch.device, tiny: bool) -> dict[str, Any]:
    """arith-verify, MiniLM encoder (strong) vs TF-IDF (weak), vanilla, 3 seeds, on `device`."""
    from autow2s.testbed.cache import ArtifactCache
    from autow2s.testbed.experiment import ExperimentSettings, run_experiment
    from autow2s.testbed.methods.registry import load_method
    from autow2s.testbed.tasks.text.arith_verify import ArithConfig, generate

    task = generate(ArithConfig(n_train_label=100, n_train_unlabel=200, n_test=100) if tiny else ArithConfig())
    with tempfile.TemporaryDirectory() as cache:
        os.environ["AUTOW2S_CACHE_DIR"] = cache
        started = time.perf_counter()
        result = run_experiment(task, load_method("vanilla"), [42, 43, 44], cache=ArtifactCache(cache),
                                settings=ExperimentSettings(strong="encoder", weak="tfidf", device=str(device)))
    out = {k: getattr(result, k) for k in ("weak_acc", "ceiling_acc", "transfer_acc", "pgr", "pgr_ci")}
    out["seconds"] = time.perf_counter() - started
    print(f"[w2s] {out}", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
