"""`autow2s mcp` seen by the official `mcp` client SDK, over stdio and over streamable HTTP.

Each transport attaches to its own copy of the session's finished campaign (so the two labs never
share a DB) as researcher search-1: over stdio to a campaign whose lab is running (lab.url), over
HTTP to a resumable one whose lab the server starts itself. Both check what a harness relies on:
every tool listed with its schema, sandbox tools confined to search-1's sandbox, lab tools charged
to search-1, bad calls answered as tool errors, and no word of the held-out transfer task.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from autow2s.researchers.tool_specs import TOOLS
from web_helpers import campaign_run, copy_run, start_dashboard  # noqa: F401 - campaign_run is a fixture

RESEARCHER, OTHER = "search-1", "search-2"
TRANSFER_TASK = "synth-nonlinear"
OTHERS_SECRET = "the-other-researchers-secret-7f3a"


def _run_copy(campaign_run: Path, tmp_path: Path) -> Path:
    run = copy_run(campaign_run, tmp_path / "run")
    other = run / "workspaces" / OTHER
    other.mkdir(parents=True)
    (other / "notes.txt").write_text(OTHERS_SECRET)
    return run


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTOW2S_") or k == "AUTOW2S_CACHE_DIR"}


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def _exercise(session: Any, run: Path) -> dict[str, Any]:
    """Every check, through one client session; returns what the assertions need."""
    init = await session.initialize()
    listed = (await session.list_tools()).tools
    seen: dict[str, Any] = {"tools": {tool.name: tool.input_schema for tool in listed}, "outputs": [],
                            "instructions": init.instructions}
    # What a harness shows besides tools: the research brief (a slash command) and resources (attachable context).
    prompts = (await session.list_prompts()).prompts
    seen["prompts"] = [prompt.name for prompt in prompts]
    await session.call_tool("share_finding", {"type": "insight", "title": "attached over MCP",
                                              "body": "a finding of the attached researcher"})
    brief = await session.get_prompt("research_brief", {})
    seen["brief"] = "\n".join(m.content.text for m in brief.messages)
    seen["resources"] = {str(r.uri): r.name for r in (await session.list_resources()).resources}
    seen["read"] = {uri: "\n".join(c.text for c in (await session.read_resource(uri)).contents)
                    for uri in seen["resources"]}
    # Every path the instructions name must exist where they say (in a job, or for read_file).
    named = sorted(set(re.findall(r"(/(?:reference|forum|workspace|task)[\w./-]*)", init.instructions or "")))
    seen["named_paths"] = {path: _text(await session.call_tool("bash", {"command": f"ls -d {path.rstrip('./')}"}))
                           for path in named}

    async def call(name: str, arguments: dict[str, Any]) -> Any:
        result = await session.call_tool(name, arguments)
        seen["outputs"].append(_text(result))
        return result

    test_items = len((run / "data" / "synth-linear" / "public" / "test.jsonl").read_text().splitlines())
    before = json.loads(_text(await call("lab_status", {})))
    seen["pwd"] = await call("bash", {"command": f"pwd; ls /workspace /reference; cat {run}/workspaces/{OTHER}/notes.txt; "
                                                 f"ls {run}/workspaces; ls {run}; cat /workspace/../{OTHER}/notes.txt"})
    draw = random.Random(7)
    predictions = [round(draw.random(), 4) for _ in range(test_items)]
    await call("write_file", {"path": "preds.json", "content": json.dumps({"predictions": predictions})})
    seen["evaluation"] = await call("evaluate_predictions", {"predictions_file": "preds.json"})
    seen["after"] = json.loads(_text(await call("lab_status", {})))
    seen["before"] = before
    seen["missing_argument"] = await call("evaluate_predictions", {})
    seen["missing_file"] = await call("evaluate_predictions", {"predictions_file": "no-such-file.json"})
    seen["unknown_tool"] = await call("rm_rf", {"path": "/"})
    seen["leaderboard"] = await call("leaderboard", {})
    return seen


def _check(seen: dict[str, Any], run: Path) -> None:
    assert seen["tools"] == {spec.name: spec.parameters for spec in TOOLS}  # all 18, schemas exactly ours
    assert "METHOD_REFERENCE" not in seen["instructions"] and "/reference/METHOD_API.md" in seen["instructions"]
    assert len(seen["named_paths"]) >= 3, seen["named_paths"]
    for path, listing in seen["named_paths"].items():
        assert listing.startswith("exit 0"), (path, listing)
    assert seen["prompts"] == ["research_brief"]
    brief = seen["brief"]
    for expected in ("synth-linear", "Your starting direction", "evaluate requests", "Budget left",
                     "/reference/METHOD_API.md", "Your notebook"):
        assert expected in brief, expected
    resources = seen["resources"]
    assert {"autow2s://reference/METHOD_API.md", "autow2s://notebook"} <= set(resources)
    forum = [uri for uri in resources if uri.startswith("autow2s://forum/")]
    assert forum, resources  # the campaign's findings, one resource each
    assert "ctx.strong_model" in seen["read"]["autow2s://reference/METHOD_API.md"]
    assert seen["read"][forum[0]].startswith("# ") and "type:" in seen["read"][forum[0]]

    sandbox = seen["pwd"]
    assert not sandbox.is_error
    listing = _text(sandbox)
    assert listing.splitlines()[2] == "/workspace" and "METHOD_API.md" in listing  # search-1's own sandbox
    assert OTHERS_SECRET not in listing  # neither by its host path nor next to /workspace

    evaluation = seen["evaluation"]
    assert not evaluation.is_error, _text(evaluation)
    assert "evaluation_id" in _text(evaluation)
    left = lambda status: status["budgets"]["evaluate"]["left"]  # noqa: E731
    assert left(seen["after"]) == left(seen["before"]) - 1  # charged to search-1's own budget
    assert json.loads(_text(evaluation))["budget_left"] == left(seen["after"])
    import sqlite3

    with sqlite3.connect(run / "lab-state" / "lab.sqlite") as db:
        owner = db.execute("SELECT r.name FROM evaluations e JOIN researchers r ON r.id = e.researcher_id "
                           "ORDER BY e.id DESC LIMIT 1").fetchone()[0]
    assert owner == RESEARCHER

    for bad in ("missing_argument", "missing_file", "unknown_tool"):
        assert seen[bad].is_error, bad
        assert _text(seen[bad]).startswith("error:")
    assert "predictions_file" in _text(seen["missing_argument"])
    assert "no-such-file.json" in _text(seen["missing_file"])
    assert not seen["leaderboard"].is_error
    assert not any(TRANSFER_TASK in output for output in seen["outputs"])


def _labs_serving(run: Path) -> list[str]:
    """Command lines of `autow2s serve` processes on this run's data (a lab some server started itself)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and str(run / "data").encode() in args:
            found.append(b" ".join(args).decode(errors="replace"))
    return found


def test_mcp_over_stdio(campaign_run: Path, tmp_path: Path) -> None:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    run = _run_copy(campaign_run, tmp_path)
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "autow2s", "mcp", str(run), "--researcher", RESEARCHER], env=_env())

    async def main() -> dict[str, Any]:
        async with AsyncExitStack() as stack:
            errors = stack.enter_context((tmp_path / "server.stderr").open("w"))
            read, write = await stack.enter_async_context(stdio_client(params, errlog=errors))
            session = await stack.enter_async_context(ClientSession(read, write))
            seen = await _exercise(session, run)
            seen["own_labs"] = _labs_serving(run)  # while the server is still up
            return seen

    # A running campaign: its lab is up and lab.url says where. The server must use that lab, and leave it up.
    with start_dashboard(run) as lab:
        (run / "lab.url").write_text(lab.url + "\n")
        seen = anyio.run(main)
        assert seen["own_labs"] == [], seen["own_labs"]  # it started no lab of its own
        assert (run / "lab.url").read_text().strip() == lab.url
        assert httpx.get(f"{lab.url}/api/v1/health", timeout=10).status_code == 200
    _check(seen, run)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mcp_over_streamable_http(campaign_run: Path, tmp_path: Path) -> None:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    run = _run_copy(campaign_run, tmp_path)
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "autow2s", "mcp", str(run), "--researcher", RESEARCHER,
                               "--transport", "http", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                              env=_env())
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the MCP server did not listen within 60 s"
                time.sleep(0.2)

        async def main() -> dict[str, Any]:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(streamable_http_client(f"http://127.0.0.1:{port}/mcp"))
                session = await stack.enter_async_context(ClientSession(read, write))
                return await _exercise(session, run)

        seen = anyio.run(main)
        _check(seen, run)
        assert _labs_serving(run)  # no campaign was running: the server started the run's lab itself
    finally:
        server.terminate()
        stopped = time.monotonic()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    # SIGTERM, as harnesses stop servers: the server, its lab and its lab.url are gone within seconds.
    assert time.monotonic() - stopped < 7, "autow2s mcp took more than 7 s to exit on SIGTERM"
    assert not (run / "lab.url").exists()


def test_mcp_hides_every_other_workspace_and_refuses_odd_names(campaign_run: Path,
                                                               tmp_path: Path) -> None:
    from autow2s.campaign.attach import ResearcherTools
    from autow2s.campaign.runner import Campaign
    from autow2s.campaign.state import researcher_names
    from autow2s.errors import AutoW2SError

    run = _run_copy(campaign_run, tmp_path)
    (run / "workspaces" / "claude-code-1").mkdir()  # a harness attached earlier under a name of its own
    campaign = Campaign.resume(run)
    others = ResearcherTools(run, RESEARCHER)._others(campaign, researcher_names(campaign.config.researchers))
    assert set(others) == {run / "workspaces" / OTHER, run / "workspaces" / "claude-code-1"}
    with pytest.raises(AutoW2SError, match="letters, digits"):
        ResearcherTools(run, "../search-2")


def test_an_attached_researchers_jobs_end_with_the_campaigns_research(campaign_run: Path, tmp_path: Path) -> None:
    """Attached to a campaign that is researching, a job stops at the campaign's deadline, and once the campaign
    verifies nothing new starts (its jobs would otherwise run through the final verification)."""
    from autow2s.campaign.attach import RESEARCH_OVER, ResearcherTools
    from autow2s.campaign.state import CampaignConfig
    from autow2s.rundir.layout import RunDir, RunState

    run = _run_copy(campaign_run, tmp_path)
    paths = RunDir(run)
    budget = CampaignConfig.load(paths).budget_s
    state = RunState.load(paths.state)
    state.phase, state.elapsed_s = "researching", budget - 12.0  # 12 s of research left
    state.save(paths.state)
    with start_dashboard(run) as lab:
        (run / "lab.url").write_text(lab.url + "\n")
        tools = ResearcherTools(run, RESEARCHER).start()
        try:
            assert tools.wait_ready(120) is None
            started = time.monotonic()
            reply = tools.call("bash", {"command": "sleep 300; echo woke"})
            took = time.monotonic() - started
            assert took < 40 and "woke" not in reply, (took, reply)
            assert "deadline" in reply or "time is up" in reply, reply
            state = RunState.load(paths.state)
            state.phase = "verifying"
            state.save(paths.state)
            time.sleep(3)  # the server reads the campaign's state every 2 s
            assert tools.call("bash", {"command": "echo late"}) == RESEARCH_OVER
            assert not tools.call("lab_status", {}).startswith("error")  # reading still works
        finally:
            tools.close()


# -- the agent-sdk researcher, end to end: the real Claude Code CLI against a local Messages server ----------------

def _sse(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


def _turn(body: dict[str, Any], script: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """The streamed reply: the script's step for the number of tool results so far (extra requests get the same)."""
    done = sum(1 for message in body.get("messages", []) if isinstance(message.get("content"), list)
               for block in message["content"] if block.get("type") == "tool_result")
    step = script[min(done, len(script) - 1)]
    blocks = ([{"type": "text", "text": step}] if isinstance(step, str)
              else [{"type": "tool_use", "id": f"toolu_{done}_{i}", "name": name, "input": args}
                    for i, (name, args) in enumerate(step)])
    start = {"id": f"msg_{done}", "type": "message", "role": "assistant", "model": body.get("model", "fake"),
             "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {"input_tokens": 1000, "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            opened, delta = dict(block, text=""), {"type": "text_delta", "text": block["text"]}
        else:
            opened = dict(block, input={})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}),
                   ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
                   ("content_block_stop", {"type": "content_block_stop", "index": index})]
    stop = "end_turn" if isinstance(step, str) else "tool_use"
    return events + [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                        "usage": {"output_tokens": 100}}), ("message_stop", {"type": "message_stop"})]


def _streaming_anthropic(script: list[Any], requests: list[dict[str, Any]]) -> Any:
    """A loopback server speaking the streamed Anthropic Messages protocol, as Claude Code uses it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if "/v1/messages" in self.path and "count_tokens" not in self.path:
                requests.append(body)
                data, kind = _sse(_turn(body, script)), "text/event-stream"
            else:
                data, kind = json.dumps({"input_tokens": 1000}).encode(), "application/json"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_agent_sdk_researcher_acts_only_through_our_tools(campaign_run: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("claude_agent_sdk", reason="pip install 'autow2s[agent-sdk]'")
    from autow2s.campaign.attach import ResearcherTools
    from autow2s.campaign.researchers import make_step
    from autow2s.researchers.accounting import Ledger, load_prices
    from autow2s.researchers.agent_sdk import ALLOWED_TOOLS
    from autow2s.researchers.directions import assign_directions, load_directions

    run = _run_copy(campaign_run, tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude-config"))  # not the user's ~/.claude
    script = [[("mcp__autow2s__bash", {"command": "pwd; ls /workspace /reference"})],
              [("mcp__autow2s__lab_status", {}), ("Bash", {"command": "id"})], "I checked my sandbox and my budget."]
    requests: list[dict[str, Any]] = []
    llm = _streaming_anthropic(script, requests)
    tools = ResearcherTools(run, "agent-sdk-1").start()
    try:
        assert tools.wait_ready() is None
        toolbox = tools.toolbox
        ledger = Ledger(prices=load_prices(None))
        researcher_dir = run / "researchers" / "agent-sdk-1"
        step = make_step("agent-sdk", toolbox, assign_directions(1, load_directions(None))[0], 1, researcher_dir,
                         ledger, "claude-opus-5-5", f"http://127.0.0.1:{llm.server_address[1]}", None)
        outcome = step(0)
    finally:
        tools.close()
        llm.shutdown()
    assert outcome.reason == "end_turn" and outcome.calls_made == 3
    assert outcome.dollars > 0 and ledger.spent["agent-sdk-1"] == outcome.dollars  # the campaign's ledger pays
    offered = {tool["name"] for body in requests for tool in body.get("tools", [])}
    assert set(ALLOWED_TOOLS) <= offered and not offered & {"Bash", "Read", "Write", "Edit", "Glob", "Grep",
                                                              "WebFetch", "WebSearch"}
    results = [block for body in requests[-1:] for message in body["messages"] if isinstance(message["content"], list)
               for block in message["content"] if block.get("type") == "tool_result"]
    text = json.dumps(results)
    assert "/workspace" in text and "METHOD_API.md" in text  # bash ran in agent-sdk-1's sandbox
    assert "evaluations_total" in text  # lab_status with its own token
    assert sum(1 for block in results if block.get("is_error")) == 1  # the built-in Bash was refused
    recorded = [json.loads(line) for line in (researcher_dir / "transcript.jsonl").read_text().splitlines()]
    assert [entry["tool"] for entry in recorded if "tool" in entry] == ["bash", "lab_status", "Bash"]
    assert not any(TRANSFER_TASK in json.dumps(body) for body in requests)


def test_agent_sdk_kind_says_what_to_install_when_the_sdk_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from autow2s.campaign.state import parse_researchers
    from autow2s.errors import AutoW2SError

    if importlib.util.find_spec("claude_agent_sdk") is not None:
        assert parse_researchers("agent-sdk:2,search:1") == (("agent-sdk", 2), ("search", 1))
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)  # as if it were not installed
    with pytest.raises(AutoW2SError, match=r"pip install 'autow2s\[agent-sdk\]'"):
        parse_researchers("agent-sdk:1")
