"""The fast LM paths compute what the plain HF path computes: same loss curve, same predictions.

This is the CPU half of the GPU benchmark's correctness check (benchmarks/gpu_lora.py runs the
same comparison in bf16 on CUDA).
"""

from __future__ import annotations

import numpy as np
import pytest

from autow2s.testbed.models.registry import get_backend
from autow2s.testbed.models.text.common import prompt_text
from autow2s.testbed.models.text.tiny import build_tiny_lm
from autow2s.testbed.tasks.text.arith_verify import ArithConfig, generate

SETTINGS = dict(epochs=2, batch_size=8, lr=2e-3, lora_r=4, lora_alpha=8, length_grouped=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    task = generate(ArithConfig(n_train_label=10, n_train_unlabel=32, n_test=16))
    # Vary lengths so padding really differs between the paths.
    rows = [dict(r, question=r["question"] + " Think carefully ." * (i % 4)) for i, r in
            enumerate(task.split("train_unlabel").rows)]
    texts = [prompt_text(r) for r in rows + task.split("test").rows]
    model_dir = build_tiny_lm(tmp_path_factory.mktemp("paths"), texts, arch="qwen3")
    return model_dir, rows, task.split("train_unlabel").labels.astype(np.float32), task.split("test").rows


def _train(setup, **overrides):
    model_dir, rows, labels, test_rows = setup
    student = get_backend(f"hf-lm:{model_dir}", "binary").make(example=rows, seed=5, **{**SETTINGS, **overrides})
    student.fit(rows, labels)
    return np.array(student.step_losses), student.predict_proba(test_rows)


@pytest.mark.parametrize("impl", ["left", "packed"])
def test_fast_path_matches_the_plain_hf_loss_curve(setup, impl):
    plain_losses, plain_probs = _train(setup, impl="padded")
    fast_losses, fast_probs = _train(setup, impl=impl)
    assert len(plain_losses) == len(fast_losses) == 2 * 4
    np.testing.assert_allclose(fast_losses, plain_losses, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast_probs, plain_probs, atol=1e-4)
    assert plain_losses[-1] != plain_losses[0]  # it did train


def test_gradient_checkpointing_changes_memory_not_results(setup):
    losses, probs = _train(setup, impl="left")
    checkpointed_losses, checkpointed_probs = _train(setup, impl="left", gradient_checkpointing=True)
    np.testing.assert_allclose(checkpointed_losses, losses, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(checkpointed_probs, probs, atol=1e-4)
