"""`autow2s report RUN_DIR`: a static HTML report with matplotlib PNGs, checked on a real short campaign."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

from web_helpers import browser, campaign_run, copy_run, screenshots, shoot  # noqa: F401 - fixtures

from autow2s.lab.web.queries import BASELINE_RESEARCHER


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


def test_report_shows_transfer_results_when_present(campaign_run, tmp_path):
    run = copy_run(campaign_run, tmp_path / "run")
    (run / "transfer.json").write_text(json.dumps({"rows": [
        {"method": "c002-best", "task": "held-out-math", "pgr": 0.41, "ci": [0.30, 0.52]},
        {"method": "vanilla", "task": "held-out-math", "pgr": 0.12, "ci": None}]}))
    out = tmp_path / "elsewhere"
    result = _report(str(run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    html = (out / "index.html").read_text()
    assert 'id="transfer"' in html and "held-out-math" in html and "0.410" in html
    assert _png_size(out / "transfer.png")[0] >= 600
    assert not (run / "report").exists()  # --out was honoured


def test_report_without_transfer_has_no_transfer_section(campaign_run, tmp_path):
    out = tmp_path / "out"
    result = _report(str(campaign_run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert 'id="transfer"' not in (out / "index.html").read_text() and not (out / "transfer.png").exists()


def test_report_on_a_folder_that_is_not_a_run_says_what_to_pass(tmp_path):
    result = _report(str(tmp_path))
    assert result.returncode == 2
    assert "no lab database" in result.stderr and "run directory" in result.stderr
