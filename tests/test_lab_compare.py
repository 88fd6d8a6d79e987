"""Verified snapshots against vanilla, paired: what "beats vanilla" rests on (lab/compare.py).

A real lab verifies vanilla (as the campaign's baseline researcher), a method that turns vanilla's answers
over, and vanilla again under another researcher; each verified run also runs vanilla on its own supervisor
and seeds. The admin's transfer table must call the turned method clearly worse, and vanilla against itself
no different.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autow2s.board_rules import BASELINE_RESEARCHER
from autow2s.lab.outcomes import pack, unpack
from lab_helpers import lab_data, start_lab  # noqa: F401 - lab_data is a fixture
from test_lab_snapshots import make_tarball, upload
from test_lab_verify import STUDENT, wait_for

TURNED = b'''"""Vanilla's answers turned over: clearly worse than vanilla on every item it gets right."""

def run(ctx):
    student = ctx.strong_model()
    student.fit(ctx.inputs("train_unlabel"), ctx.weak_soft_labels("train_unlabel"))
    return 1.0 - student.predict_proba(ctx.inputs("test"))
'''


def test_an_outcome_round_trips_as_packed_bits() -> None:
    rng = np.random.default_rng(0)
    method, weak, ceiling = rng.random((5, 333)) < 0.7, rng.random(333) < 0.6, rng.random((4, 333)) < 0.8
    data = pack(method, weak, ceiling)
    assert len(data) < 2000  # a few hundred bytes a run, not the predictions themselves
    run, top, reference = unpack(data)
    assert np.array_equal(run.method, method) and np.array_equal(run.weak, weak) and np.array_equal(top, ceiling)
    assert reference is None
    vanilla = rng.random((5, 333)) < 0.65
    _, _, reference = unpack(pack(method, weak, ceiling, vanilla))
    assert reference is not None and np.array_equal(reference.method, vanilla) and np.array_equal(reference.weak, weak)
    with pytest.raises(ValueError, match="disagree on the items"):
        pack(method, weak[:10], ceiling)
    with pytest.raises(ValueError, match="not on the method's seeds"):
        pack(method, weak, ceiling, vanilla[:3])


@pytest.mark.slow  # three verified runs with their null-supervisor repeats, and two transfer runs
def test_the_transfer_table_compares_each_snapshot_with_vanilla_paired(lab_data: Path, tmp_path: Path) -> None:
    from test_transfer import TRANSFER, _named_transfer_task, _transfer

    transfer = _named_transfer_task(tmp_path / "transfer")
    with start_lab(lab_data, tmp_path / "state", extra_args=["--transfer-data", str(transfer)]) as lab:
        admin = lab.admin()
        runs = {}
        for researcher, name, source in ((BASELINE_RESEARCHER, "vanilla", STUDENT), ("turner", "turned", TURNED),
                                         ("copier", "again", STUDENT)):
            client = lab.client(lab.create_researcher(researcher))
            snapshot = upload(client, make_tarball([(f"{name}/method.py", None, source)]), name=name,
                              message=f"{name}: a test method").json()["snapshot_id"]
            queued = client.post("/api/v1/verify", json={"snapshot_id": snapshot, "task": "wide"})
            assert queued.status_code == 202, queued.text
            runs[name] = (snapshot, queued.json()["verify_id"], client)
        for _, verify_id, client in runs.values():
            assert wait_for(client, verify_id, timeout=300)["status"] == "done"
        for name in ("vanilla", "turned"):
            assert _transfer(admin, runs[name][0])["status"] == "done"
        table = admin.get("/api/v1/admin/transfer").json()
        # researchers never see outcomes: no researcher endpoint serves them
        seen = runs["turned"][2].get(f"/api/v1/verify/{runs['turned'][1]}").json()
        assert "outcome" not in seen and "vs_vanilla" not in seen
    rows = {row["snapshot_id"]: row for row in table["rows"]}
    vanilla, turned, again = (rows[runs[name][0]] for name in ("vanilla", "turned", "again"))
    assert vanilla["is_vanilla"] and vanilla["vs_vanilla"] is None
    worse = turned["vs_vanilla"]["research_tasks"]["wide"]
    assert worse["verdict"] == "worse" and worse["ci"][1] < 0, worse
    # research PGR is the mean over every research task the lab serves (mini and wide): with mini not verified,
    # there is no research-level comparison rather than one over some of the tasks
    assert turned["vs_vanilla"]["research"] is None
    same = again["vs_vanilla"]["research_tasks"]["wide"]
    # each run is compared with vanilla on its own supervisor and seeds: vanilla saved by another researcher is
    # no different from it (compared with the campaign's vanilla run, on another fresh supervisor, it could
    # have looked significantly different)
    assert same["verdict"] == "no difference" and abs(same["difference"]) < 0.1, same
    assert turned["method"] == "turned: a test method"  # the snapshot's message names the method
    # run unchanged on the held-out task, it is compared there too (this small XOR task has a narrow gap, so the
    # interval is wide: what matters here is that the transfer run kept its outcome and was paired)
    moved = turned["vs_vanilla"]["transfer"][TRANSFER]
    assert moved is not None and moved["difference"] < 0 and moved["ci"][0] <= moved["difference"] <= moved["ci"][1]
    assert turned["vs_vanilla"]["transfer_compared"] == 1
