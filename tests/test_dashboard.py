"""The dashboard end to end: a real short campaign, `autow2s dashboard` on loopback, headless Chromium.

Each test loads a page the way a person watching would and checks it against the lab's API.
Screenshots land in a pytest tmp folder; their paths are printed (pytest -s, or -rP).
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from autow2s.lab.web import guard
from test_report import add_transfer_runs, verified_snapshots
from web_helpers import browser, campaign_run, dashboard, dashboard_token, page, run_dir, screenshots, shoot  # noqa: F401 - fixtures


def _task(run: Path) -> str:
    """The task the dashboard's pages open on: the campaign's first research task."""
    config = json.loads((run / "campaign.json").read_text())
    return str(config["tasks"][0] if config.get("tasks") else config["task"])


def _post_finding(server: Any, title: str, body: str) -> dict[str, Any]:
    token = server.create_researcher("watcher-" + secrets.token_hex(4))
    response = server.client(token).post("/api/v1/findings", json={"type": "insight", "title": title, "body": body,
                                                                   "tags": ["dashboard-test"]})
    assert response.status_code == 201, response.text
    return response.json()


def _post_cited_result(server: Any, run_dir: Path, title: str) -> dict[str, Any]:
    """A result finding that cites an evaluation of its author's (the campaign's own may have shared none yet)."""
    task = _task(run_dir)
    items = len((run_dir / "data" / task / "public" / "test.jsonl").read_text().splitlines())
    client = server.client(server.create_researcher("citer-" + secrets.token_hex(4)))
    draw = random.Random(11)
    scored = client.post("/api/v1/evaluate", json={"task": task, "predictions": [draw.random() for _ in range(items)]})
    assert scored.status_code == 200, scored.text
    response = client.post("/api/v1/findings", json={"type": "result", "title": title, "body": "see the evaluation",
                                                     "evaluation_id": scored.json()["evaluation_id"], "task": task})
    assert response.status_code == 201, response.text
    return response.json()


def _post_verified_result(server: Any, run_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A result finding citing a leaderboard row's verified run, posted by that row's researcher."""
    tokens = json.loads((run_dir / "secrets.json").read_text())["researchers"]
    row = next(r for r in rows if r["researcher"] in tokens)
    response = server.client(tokens[row["researcher"]]).post(
        "/api/v1/findings", json={"type": "result", "title": "the verified run", "body": "cites its verified run",
                                  "verify_id": row["verify_id"], "task": _task(run_dir)})
    assert response.status_code == 201, response.text
    return response.json()


def test_leaderboard_rows_equal_the_api_and_link_to_snapshots_and_findings(page, dashboard, run_dir, screenshots):
    api = dashboard.admin().get("/api/v1/leaderboard", params={"task": _task(run_dir), "limit": 1000}).json()
    assert api, "the campaign verified nothing; the leaderboard test needs rows"
    page.goto(f"{dashboard.url}/dashboard/")
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == len(api)
    shown = [{"verify_id": int(rows.nth(i).get_attribute("data-verify-id")),
              "cells": rows.nth(i).locator("td").all_inner_texts()} for i in range(rows.count())]
    for row, expected in zip(shown, api):
        assert row["verify_id"] == expected["verify_id"]
        rank, method, researcher, snapshot, dev, holdout = row["cells"][:6]
        assert (int(rank), researcher) == (expected["rank"], expected["researcher"])
        assert method.startswith(expected["method"])  # the snapshot message's first line, then any badges
        assert expected["snapshot_id"].startswith(snapshot)
        assert dev == f"{expected['dev_pgr']:.3f}" and holdout == f"{expected['holdout_pgr']:.3f}"
        null, gap = row["cells"][7:9]
        if expected["supervisor_check"] in ("passed", "flagged"):
            assert null == f"{expected['null_supervisor_pgr']:.3f}"
        else:
            assert null == expected["supervisor_check"]
        assert ("supervisor-free" in row["cells"][1]) == bool(expected["independent_of_supervisor"])
        assert gap == ("—" if expected["dev_holdout_gap"] is None else f"{expected['dev_holdout_gap']:.3f}")
    shoot(page, screenshots, "leaderboard")

    page.click("#leaderboard th >> text=holdout PGR")  # sortable: the first click sorts best first
    holdouts = [float(t) for t in page.locator("#leaderboard td[data-field=holdout_pgr]").all_inner_texts()]
    assert holdouts == sorted(holdouts, reverse=True)
    page.click("#leaderboard th >> text=holdout PGR")
    holdouts = [float(t) for t in page.locator("#leaderboard td[data-field=holdout_pgr]").all_inner_texts()]
    assert holdouts == sorted(holdouts)

    page.goto(f"{dashboard.url}/dashboard/")
    page.locator("#leaderboard tbody tr").first.locator("a.mono").click()
    assert api[0]["snapshot_id"] in page.locator("h1").inner_text()
    assert page.locator(f"#verify-{api[0]['verify_id']}").count() == 1
    _post_verified_result(dashboard, run_dir, api)  # the campaign's researchers may have posted none
    page.goto(f"{dashboard.url}/dashboard/")
    finding_links = page.locator("#leaderboard a[href^='/dashboard/forum/']")
    assert finding_links.count() >= 1, "no leaderboard row links to its finding"
    href = finding_links.first.get_attribute("href")
    finding_links.first.click()
    assert page.locator("article.thread").get_attribute("data-finding-id") == href.rsplit("/", 1)[1]


def test_pgr_chart_draws_every_evaluation_with_reference_lines(page, dashboard, run_dir, screenshots):
    task = _task(run_dir)
    evaluations = dashboard.admin().get("/api/v1/evaluations", params={"task": task, "limit": 1000}).json()
    scored = [e for e in evaluations if e["dev_pgr"] is not None]
    assert scored
    page.goto(f"{dashboard.url}/dashboard/pgr")
    chart = page.locator("svg.chart")
    assert chart.locator("circle.pt").count() == len(scored)
    assert int(chart.get_attribute("data-points")) == len(scored)
    drawn = page.evaluate("""() => {
        const box = document.querySelector('svg.chart').getBoundingClientRect();
        return [...document.querySelectorAll('svg.chart circle.pt')].filter(c => {
            const r = c.getBoundingClientRect();
            return r.width > 0 && r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
        }).length; }""")
    assert drawn == len(scored)  # every point rendered, inside the chart
    authors = {e["researcher"] for e in scored}
    assert chart.locator("path.best").count() == len(authors)  # one best-so-far line per researcher
    for reference in ("weak", "ceiling", "vanilla"):
        assert chart.locator(f"g.ref.{reference} line").count() == 1, reference
    shoot(page, screenshots, "pgr-over-time")

    name = sorted(authors)[0]
    page.click(f".legend button[data-toggle='{name}']")  # the legend hides a researcher's series
    assert chart.locator(f"g.series[data-researcher='{name}']").is_hidden()


def test_forum_search_finds_a_finding_just_posted(page, dashboard, run_dir, screenshots):
    word = "quokka" + secrets.token_hex(3)
    posted = _post_finding(dashboard, f"Confident relabelling with {word} margins", f"The {word} trick helps.")
    page.goto(f"{dashboard.url}/dashboard/forum")
    page.fill("#search input[name=q]", word)
    page.press("#search input[name=q]", "Enter")
    page.wait_for_url(f"**q={word}**")
    results = page.locator("#findings li")
    assert results.count() == 1
    assert results.first.get_attribute("data-finding-id") == str(posted["id"])
    shoot(page, screenshots, "forum-search")
    results.first.locator(".title a").click()
    assert word in page.locator("article.thread h1").inner_text()
    assert f"The {word} trick helps." in page.locator("article.thread .body").inner_text()
    shoot(page, screenshots, "forum-thread")

    cited = _post_cited_result(dashboard, run_dir, f"{word}: a cited result")
    page.goto(f"{dashboard.url}/dashboard/forum?type=result")
    first = page.locator(f"#findings li[data-finding-id='{cited['id']}']")
    first.locator("a[href^='/dashboard/evaluations/']").click()  # a result links to the evaluation it cites
    assert page.locator("h1").inner_text().startswith("Evaluation ")


def test_researchers_page_shows_state_direction_and_spend(page, dashboard, run_dir, screenshots):
    state = json.loads((run_dir / "state.json").read_text())["researchers"]
    campaign_researchers = {name: s for name, s in state.items() if "kind" in s}
    page.goto(f"{dashboard.url}/dashboard/researchers")
    for name, entry in campaign_researchers.items():
        cells = page.locator(f"#researchers tr[data-researcher='{name}'] td").all_inner_texts()
        assert cells[1] == entry["kind"] and cells[2] == entry["direction"]
        assert cells[3].split()[0] == entry["state"] and int(cells[4]) == entry["experiments"]
        assert cells[12].startswith("$0.00")  # search researchers spend no dollars
    shoot(page, screenshots, "researchers")


def test_snapshot_lineage_tree_matches_the_api(page, dashboard, screenshots):
    api = dashboard.admin().get("/api/v1/snapshots", params={"limit": 500}).json()
    page.goto(f"{dashboard.url}/dashboard/snapshots")
    nodes = page.locator("#lineage li")
    assert nodes.count() == len(api)
    parents = {n.get_attribute("data-snapshot-id"): n.get_attribute("data-parent-id") or None for n in nodes.all()}
    assert parents == {s["snapshot_id"]: s["parent_id"] for s in api}
    order = list(parents)
    for snapshot_id, parent in parents.items():  # a parent is listed before its children
        if parent is not None:
            assert order.index(parent) < order.index(snapshot_id)
    shoot(page, screenshots, "snapshots")


def test_flags_page_shows_probes_budget_refusals_and_sandbox_kills(page, dashboard, run_dir, screenshots, tmp_path):
    from autow2s.executor import LocalExecutor
    from autow2s.executor.base import JobSpec
    from autow2s.sandbox.limits import Limits

    def probes_refused() -> int:
        page.goto(f"{dashboard.url}/dashboard/flags")
        return int(page.locator("#probing p").inner_text().split()[0])

    before = probes_refused()  # the campaign's own researchers may have been refused already
    task = next(t for t in dashboard.admin().get("/api/v1/tasks").json() if t["name"] == _task(run_dir))
    prober = dashboard.create_researcher("prober-" + secrets.token_hex(3))
    predictions = [float(i % 2) for i in range(task["n_test"])]
    client = dashboard.client(prober)
    assert client.post("/api/v1/evaluate", json={"task": task["name"], "predictions": predictions}).status_code == 200
    near = [1.0 - p if i < 2 else p for i, p in enumerate(predictions)]  # two items flipped: a probe
    # A near-duplicate of one's own submission is answered with its figure; of another researcher's, refused.
    accomplice = dashboard.client(dashboard.create_researcher("accomplice-" + secrets.token_hex(3)))
    assert accomplice.post("/api/v1/evaluate", json={"task": task["name"], "predictions": near}).status_code == 409
    thrifty = dashboard.create_researcher("thrifty-" + secrets.token_hex(3), budget_total=1)
    client = dashboard.client(thrifty)
    # Its own predictions: the prober's very same ones would be answered from the prober's evaluation, uncharged.
    own = [float((i // 2) % 2) for i in range(task["n_test"])]
    assert client.post("/api/v1/evaluate", json={"task": task["name"], "predictions": own}).status_code == 200
    other = [1.0 - p for p in own]
    assert client.post("/api/v1/evaluate", json={"task": task["name"], "predictions": other}).status_code == 429
    workspace = tmp_path / "workspace"  # not tmp_path itself: pytest makes that 0700, closed to the sandbox's user
    workspace.mkdir(mode=0o755)
    executor = LocalExecutor(run_dir / "jobs")  # a real sandboxed job, killed at its wall-time limit
    try:
        result = executor.result(executor.submit(JobSpec(command=("sleep", "30"), workspace=workspace,
                                                         limits=Limits(wall_seconds=1.0), name="search-1-bash")))
    finally:
        executor.shutdown()
    assert result.limit_hit, (result.error, result.stderr_tail)

    assert probes_refused() == before + 1
    refusals = page.locator("#refusals tbody").inner_text()
    assert "refused_probe" in refusals and "over_budget" in refusals and "thrifty-" in refusals
    kills = page.locator("#kills").inner_text()
    assert result.job_id in kills and "search-1" in kills and result.limit_hit in kills
    shoot(page, screenshots, "flags")


def test_pages_refresh_in_place_while_the_lab_is_live(page, dashboard, screenshots):
    page.goto(f"{dashboard.url}/dashboard/forum?refresh=1")
    page.evaluate("window.__notReloaded = true")
    word = "wombat" + secrets.token_hex(3)
    _post_finding(dashboard, f"Live {word}", "posted while the page was open")
    page.locator(f"#findings li >> text=Live {word}").wait_for(timeout=15_000)
    assert page.evaluate("window.__notReloaded === true")  # updated in place, not by a reload
    assert page.locator("#refreshed").inner_text().startswith("updated")


def test_every_page_loads_and_shows_no_secret(dashboard, run_dir, dashboard_token, screenshots, page):
    secrets_file = json.loads((run_dir / "secrets.json").read_text())
    hidden = [secrets_file["admin_token"], dashboard.admin_token, dashboard_token,
              *secrets_file.get("researchers", {}).values()]
    cookies = {"autow2s_dashboard": dashboard_token}
    with httpx.Client(base_url=dashboard.url, cookies=cookies, timeout=30) as client:
        paths = ["/dashboard/", "/dashboard/pgr", "/dashboard/forum", "/dashboard/researchers",
                 "/dashboard/snapshots", "/dashboard/flags", "/dashboard/transfer"]
        paths += [f"/dashboard/forum/{f['id']}" for f in dashboard.admin().get("/api/v1/findings").json()]
        paths += [f"/dashboard/snapshots/{s['snapshot_id']}" for s in dashboard.admin().get("/api/v1/snapshots").json()]
        paths += [f"/dashboard/evaluations/{e['evaluation_id']}"
                  for e in dashboard.admin().get("/api/v1/evaluations", params={"limit": 20}).json()]
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
            assert "Content-Security-Policy" in response.headers
            for secret in hidden:
                assert secret not in response.text, path
            assert "aw2s_" not in response.text, path
        assert client.get("/dashboard/forum/999999").status_code == 404
        assert client.get("/dashboard/snapshots/" + "0" * 40).status_code == 404


def test_transfer_page_plots_research_against_transfer_pgr_with_vanilla_as_reference(dashboard, run_dir,
                                                                                   dashboard_token):
    db = run_dir / "lab-state" / "lab.sqlite"
    snapshots = verified_snapshots(db)
    assert any(snapshots.values()), "the campaign did not verify vanilla"
    task = "held-out-" + secrets.token_hex(3)  # the lab serves no such task: its runs show all the same
    pgr_of = {sid: (0.123 if vanilla else 0.4) for sid, vanilla in snapshots.items()}
    own = dashboard.admin().get("/api/v1/admin/transfer").json()  # the campaign's own transfer tasks, if any
    add_transfer_runs(db, task, pgr_of)
    try:
        with httpx.Client(base_url=dashboard.url, cookies={"autow2s_dashboard": dashboard_token}, timeout=30) as client:
            html = client.get("/dashboard/transfer").text
            board = client.get("/dashboard/").text
    finally:
        with sqlite3.connect(db, timeout=30) as conn:  # other tests on this worker see the campaign as it was
            conn.execute("DELETE FROM transfer_runs WHERE task = ?", (task,))
    assert 'href="/dashboard/transfer"' in board and 'data-field="transfer_pgr"' in board  # nav link, columns
    svg = html[html.index('<svg class="chart transfer"'):html.index("</svg>")]
    tasks = sorted([task, *own["transfer_tasks"]])
    assert f'data-tasks="{" ".join(tasks)}"' in svg
    assert svg.count(f'data-task="{task}"') == len(snapshots)  # one marker per snapshot on the new task
    assert 'data-ref="vanilla-research"' in svg
    vanilla = own.get("vanilla") or {}
    if not own["transfer_tasks"]:  # vanilla's mean transfer PGR is its held-out figure alone
        assert 'data-ref="vanilla-transfer"' in svg and "vanilla transfer · 0.12" in svg
    elif vanilla.get("transfer_pgr") is not None:
        assert 'data-ref="vanilla-transfer"' in svg
    table = html[html.index('<table id="transfer"'):]
    table = table[:table.index("</table>")]
    for name in tasks:
        assert f'<th class="num" data-task="{name}">{name}</th>' in table
    rows = table.split("<tr")[2:]
    assert len(rows) == len(snapshots)
    vanilla_row = next(r for r in rows if 'class="baseline"' in r)
    assert "0.123" in vanilla_row and "reference" in vanilla_row
    assert all("0.400" in r for r in rows if r is not vanilla_row)


def test_transfer_page_without_transfer_tasks_says_how_to_get_them():
    from autow2s.lab.web.render import environment

    html = environment().get_template("transfer.html").render(table=None, chart=None, n_runs=0, nav="transfer",
                                                              counts={"evaluations": 0, "findings": 0,
                                                                      "snapshots": 0}, campaign=None, refresh=0)
    assert 'id="no-transfer"' in html and "no transfer tasks" in html
    assert "autow2s run --transfer-tasks" in html and "autow2s transfer RUN_DIR --tasks" in html


def test_dashboard_token_is_required_and_moved_into_a_cookie(dashboard, dashboard_token):
    with httpx.Client(base_url=dashboard.url, timeout=30) as client:
        refused = client.get("/dashboard/")
        assert refused.status_code == 401 and "AUTOW2S_DASHBOARD_TOKEN" in refused.text
        assert client.get("/dashboard/?token=wrong").status_code == 401
        granted = client.get(f"/dashboard/pgr?token={dashboard_token}")
        assert granted.status_code == 303 and granted.headers["location"] == "/dashboard/pgr"  # token out of the URL
        assert "httponly" in granted.headers["set-cookie"].lower()
        assert client.get("/dashboard/pgr").status_code == 200  # the cookie now carries it
        assert client.get("/api/v1/leaderboard", params={"task": "x"}).status_code == 401  # the API keeps its tokens


@pytest.mark.parametrize("host, token, allowed", [("127.0.0.1", "", True), ("::1", "", True), ("10.0.0.7", "", False),
                                                  ("10.0.0.7", "s3cret", False)])
def test_without_a_token_only_loopback_clients_are_served(monkeypatch, host, token, allowed):
    monkeypatch.setenv(guard.DASHBOARD_TOKEN_ENV, token)
    request = Request({"type": "http", "method": "GET", "path": "/dashboard/", "query_string": b"", "headers": [],
                       "client": (host, 50000)})
    answer = guard.check(request)
    assert (answer is None) is allowed
    if not allowed:
        assert answer.status_code in (401, 403) and guard.DASHBOARD_TOKEN_ENV in answer.body.decode()


def test_chart_and_lineage_cope_with_an_empty_lab_and_a_long_chain():
    from autow2s.lab.web.charts import best_so_far, pgr_chart
    from autow2s.lab.web.queries import Point, lineage_rows

    assert pgr_chart([], [], {}, {}).count("<circle") == 0  # an empty lab still draws axes and references
    points = [Point(1, t, p, i) for i, (t, p) in enumerate([(0, 0.1), (1, 0.05), (2, 0.3), (3, 0.2)])]
    assert best_so_far(points) == [(0, 0.1), (2, 0.3)]
    chain = [{"id": str(i), "parent_id": str(i - 1) if i else None} for i in range(3000)]
    rows = lineage_rows(chain + [{"id": "b", "parent_id": "0"}])
    assert len(rows) == 3001 and max(r["depth"] for r in rows) == 1  # a long chain does not indent forever
