"""hf-lm on CPU with tiny from_config Qwen models: label-token scoring, LoRA training, inference, reload."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.experiment import ExperimentSettings, run_experiment
from autow2s.testbed.methods.registry import load_method
from autow2s.testbed.models.registry import get_backend
from autow2s.testbed.models.text.common import prompt_text
from autow2s.testbed.models.text.hf_lm import PROJECTIONS, LMConfig
from autow2s.testbed.models.text.tiny import build_tiny_lm
from autow2s.testbed.tasks.text.arith_verify import ArithConfig, generate

TINY = dict(epochs=3, batch_size=16, lr=2e-3, lora_r=8, lora_alpha=16)
PAIRWISE = [{"id": i, "prompt": "Which reply is kind ?", "first": "Go away ." if i % 2 else "Happy to help !",
             "second": "Happy to help !" if i % 2 else "Go away ."} for i in range(48)]


@pytest.fixture(scope="module")
def task():
    return generate(ArithConfig(n_train_label=64, n_train_unlabel=96, n_test=48))


def _texts(task):
    return [prompt_text(r) for s in task.splits.values() for r in s.rows] + [prompt_text(r) for r in PAIRWISE]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory, task):
    """A tiny Qwen3 saved to disk, so the real from_pretrained loading path runs."""
    return build_tiny_lm(tmp_path_factory.mktemp("qwen3"), _texts(task), arch="qwen3")


def test_qwen2_architecture_trains_with_lora(task):
    """The anchor's weak family. Registered in memory: transformers 5 maps a saved qwen2 directory to
    Qwen2Tokenizer, which cannot read the tiny word-level vocabulary."""
    from transformers import AutoModelForCausalLM

    from autow2s.testbed.models.text.hf_lm import SharedBase
    from autow2s.testbed.models.text.tiny import build_word_tokenizer, tiny_config

    tokenizer = build_word_tokenizer(_texts(task))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("qwen2", len(tokenizer)))
    SharedBase.register(LMConfig(model="tiny-qwen2"), torch.device("cpu"), model, tokenizer)
    student = get_backend("hf-lm:tiny-qwen2", "pairwise").make(example=PAIRWISE, seed=0, **TINY)
    labels = np.array([i % 2 for i in range(len(PAIRWISE))], dtype=np.float32)
    report = student.fit(PAIRWISE, labels)
    assert report.history[-1] < report.history[0]
    probs = student.predict_proba(PAIRWISE)
    assert probs[labels == 1].mean() > probs[labels == 0].mean()


def _plain_label_probability(model_dir, row, positive: str, negative: str) -> float:
    """P(positive) from the two label tokens, computed with nothing but transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tokenizer.encode(prompt_text(row), add_special_tokens=False)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    pos, neg = (tokenizer.encode(w, add_special_tokens=False)[0] for w in (positive, negative))
    return float(torch.softmax(logits[[neg, pos]], dim=-1)[1])


def test_untrained_student_scores_the_label_tokens_exactly(tiny_lm, task):
    rows = task.split("test").rows[:3]
    student = get_backend(f"hf-lm:{tiny_lm}", "binary").make(example=rows, seed=0)
    probs = student.predict_proba(rows)
    expected = [_plain_label_probability(tiny_lm, row, "True", "False") for row in rows]
    np.testing.assert_allclose(probs, expected, atol=1e-5)  # LoRA starts as the identity
    pairwise = get_backend(f"hf-lm:{tiny_lm}", "pairwise").make(example=PAIRWISE, seed=0)
    np.testing.assert_allclose(pairwise.predict_proba(PAIRWISE[:2]),
                               [_plain_label_probability(tiny_lm, r, "B", "A") for r in PAIRWISE[:2]], atol=1e-5)


def test_lora_training_learns_and_reloads_from_state_arrays(tiny_lm):
    backend = get_backend(f"hf-lm:{tiny_lm}", "pairwise")
    labels = np.array([i % 2 for i in range(len(PAIRWISE))], dtype=np.float32)
    student = backend.make(example=PAIRWISE, seed=1, **TINY)
    report = student.fit(PAIRWISE, labels)
    assert report.history[-1] < report.history[0]
    probs = student.predict_proba(PAIRWISE)
    assert ((probs >= 0.5) == labels).mean() > 0.9
    arrays = student.state_arrays()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    assert any(".lora_A." in k for k in arrays) and any("mlp.down_proj" in k for k in arrays)
    rebuilt = backend.load(example=PAIRWISE, arrays=arrays)  # the LoRA shape comes from the arrays
    np.testing.assert_allclose(rebuilt.predict_proba(PAIRWISE), probs, atol=1e-5)
    features = student.features(PAIRWISE[:5])
    assert features.shape[0] == 5 and np.isfinite(features).all()


def test_sample_weights_and_losses_reach_the_lm(tiny_lm):
    backend = get_backend(f"hf-lm:{tiny_lm}", "pairwise")
    quick = {**TINY, "epochs": 2}
    labels = np.array([i % 2 for i in range(len(PAIRWISE))], dtype=np.float32)
    weighted = backend.make(example=PAIRWISE, seed=1, **quick)
    weighted.fit(PAIRWISE, np.ones_like(labels), weights=labels)  # only rows labelled B count
    assert weighted.predict_proba(PAIRWISE).mean() > 0.7
    product = backend.make(example=PAIRWISE, seed=1, **{**quick, "epochs": 1})
    soft = 0.3 + 0.4 * labels  # with hard targets the product loss equals cross-entropy
    product.fit(PAIRWISE, soft, loss="product")
    xent = backend.make(example=PAIRWISE, seed=1, **{**quick, "epochs": 1})
    xent.fit(PAIRWISE, soft)
    assert product.step_losses != xent.step_losses


def test_defaults_follow_the_anchor():
    config = LMConfig()
    assert (config.lora_r, config.lora_alpha, config.target_modules) == (32, 32, PROJECTIONS)
    assert config.torch_dtype(torch.device("cpu")) == torch.float32
    assert config.torch_dtype(torch.device("cuda")) == torch.bfloat16


def test_hf_lm_is_the_strong_student_of_a_whole_experiment(tiny_lm, task, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOW2S_CACHE_DIR", str(tmp_path))
    task = generate(ArithConfig(n_train_label=40, n_train_unlabel=48, n_test=24))
    settings = ExperimentSettings(strong=f"hf-lm:{tiny_lm}", weak="tfidf", n_boot=50)
    result = run_experiment(task, load_method("vanilla"), [7], cache=ArtifactCache(tmp_path), settings=settings)
    assert 0 <= result.transfer_acc <= 1 and 0 <= result.ceiling_acc <= 1
    assert len(result.per_seed) == 1
