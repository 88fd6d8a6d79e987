"""`autow2s report RUN_DIR`: a static HTML report with matplotlib PNGs, checked on a real short campaign."""

from __future__ import annotations

import json
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

from autow2s.board_rules import BASELINE_RESEARCHER
from web_helpers import browser, campaign_run, copy_run, screenshots, shoot  # noqa: F401 - fixtures


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autow2s", "report", *args], capture_output=True, text=True,
                          timeout=180)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_writes_static_html_with_plots_leaderboard_and_findings(campaign_run, tmp_path, browser, screenshots):
    run = copy_run(campaign_run, tmp_path / "run")
    result = _report(str(run))
    assert result.returncode == 0, result.stderr
    index = run / "report" / "index.html"
    assert str(index) in result.stdout
    html = index.read_text()
    for name in ("pgr_over_time.png", "methods.png"):
        width, height = _png_size(run / "report" / name)
        assert width >= 600 and height >= 150
        assert f'src="{name}"' in html  # relative: the folder can be moved or mailed
    assert "http://" not in html and "https://" not in html and "<script" not in html  # nothing to fetch or run
    board = json.loads((run / "leaderboard.json").read_text())  # what the campaign wrote from the lab's API
    for row in board["rows"]:
        assert row["method"] in html and f"{row['holdout_pgr']:.3f}" in html
    assert f"{board['vanilla']['holdout_pgr']:.3f}" in html

    tab = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        tab.goto(index.as_uri())  # opens from disk, without a server
        loaded = tab.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        assert loaded and all(loaded)
        leaderboard = tab.locator("#leaderboard tbody tr")
        shown = [leaderboard.nth(i).locator("td").nth(1).inner_text() for i in range(leaderboard.count())]
        expected = [r["method"] for r in board["rows"]]
        assert [m for m, r in zip(shown, tab.locator("#leaderboard tbody tr td:nth-child(3)").all_inner_texts())
                if r != BASELINE_RESEARCHER] == expected  # the campaign's order, the baseline aside
        methods = tab.locator("#methods tbody tr")
        assert methods.count() >= 2 and "[" in methods.first.inner_text()  # each method with its CI
        assert tab.locator(".finding").count() >= 1  # the top findings
        assert "Best verified method" in tab.locator("#headline").inner_text()
        shoot(tab, screenshots, "report")
    finally:
        tab.close()


def add_transfer_runs(db: Path, task: str, pgr_of: dict[str, float]) -> None:
    """Transfer runs on `task` for the given snapshots, as the lab's admin would have made them (lab/transfer.py)."""
    with sqlite3.connect(db, timeout=30) as conn:
        for snapshot_id, pgr in pgr_of.items():
            conn.execute("INSERT INTO transfer_runs (snapshot_id, task, seeds, status, error, holdout_accuracy, "
                         "holdout_pgr, holdout_ci_low, holdout_ci_high, created_at, finished_at) "
                         "VALUES (?, ?, '[1, 2]', 'done', '', 0.7, ?, ?, ?, ?, ?)",
                         (snapshot_id, task, pgr, pgr - 0.1, pgr + 0.1, time.time(), time.time()))


def verified_snapshots(db: Path) -> dict[str, bool]:
    """Every snapshot with a finished verified run -> whether it is the vanilla baseline's."""
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute("SELECT DISTINCT v.snapshot_id, r.name FROM verify_runs v JOIN researchers r "
                            "ON r.id = v.researcher_id WHERE v.status = 'done'").fetchall()
    return {snapshot_id: name == BASELINE_RESEARCHER for snapshot_id, name in rows}


def test_report_shows_transfer_results_from_the_lab_db(campaign_run, tmp_path):
    run = copy_run(campaign_run, tmp_path / "run")
    db = run / "lab-state" / "lab.sqlite"
    with sqlite3.connect(db) as conn:  # the campaign's own transfer runs (when it had transfer tasks)
        own = conn.execute("SELECT task, holdout_pgr FROM transfer_runs WHERE status = 'done'").fetchall()
    snapshots = verified_snapshots(db)
    assert any(snapshots.values()) and not all(snapshots.values()), "the campaign verified no method and vanilla"
    pgr_of = {sid: (0.123 if vanilla else 0.41 + 0.01 * i)
              for i, (sid, vanilla) in enumerate(sorted(snapshots.items()))}
    add_transfer_runs(db, "held-out-math", pgr_of)
    out = tmp_path / "elsewhere"
    result = _report(str(run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    html = (out / "index.html").read_text()
    assert 'id="transfer"' in html and "held-out-math" in html
    section = html[html.index('<table id="transfer"'):]
    section = section[:section.index("</table>")]
    for pgr in pgr_of.values():
        assert f"{pgr:.3f}" in section
    for task, pgr in own:
        assert task in section and f"{pgr:.3f}" in section
    rows = section.split("<tr")[2:]  # the header row aside
    assert len(rows) == len(snapshots)
    vanilla_row = next(r for r in rows if "(baseline)" in r)
    assert "reference" in vanilla_row and "0.123" in vanilla_row
    if not own:  # on held-out-math alone, every method (0.41+) beats vanilla (0.123)
        assert all("1/1" in r for r in rows if r is not vanilla_row)
    assert _png_size(out / "transfer.png")[0] >= 600
    assert 'src="transfer.png"' in html
    assert not (run / "report").exists()  # --out was honoured


def test_report_without_transfer_has_no_transfer_section(campaign_run, tmp_path):
    run = copy_run(campaign_run, tmp_path / "run")
    with sqlite3.connect(run / "lab-state" / "lab.sqlite") as conn:
        conn.execute("DELETE FROM transfer_runs")  # whether or not the campaign made some
    out = tmp_path / "out"
    result = _report(str(run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert 'id="transfer"' not in (out / "index.html").read_text() and not (out / "transfer.png").exists()


def test_report_on_a_folder_that_is_not_a_run_says_what_to_pass(tmp_path):
    result = _report(str(tmp_path))
    assert result.returncode == 2
    assert "no lab database" in result.stderr and "run directory" in result.stderr
