"""Both LLM policies, through the official SDKs, against local servers speaking their wire protocols.

A scripted conversation calls every tool against a real lab and a real sandboxed executor, hits
tool errors and carries on, and a second conversation stops at the dollar cap. The agent-sdk
researcher runs the real Claude Code CLI (claude-agent-sdk) against the same local server.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autow2s.executor import LocalExecutor
from autow2s.researchers.accounting import DEFAULT_CLAUDE_MODEL, DEFAULT_PRICES, Ledger, Usage, cost
from autow2s.researchers.chat import AnthropicChat, OpenAIChat
from autow2s.researchers.directions import BUILTIN_DIRECTIONS
from autow2s.researchers.lab_client import LabClient
from autow2s.researchers.llm_policy import LLMPolicy, replay_calls
from autow2s.researchers.tool_specs import TOOL_NAMES
from autow2s.researchers.toolbox import ToolBox
from lab_helpers import lab_data, start_lab  # noqa: F401 - fixture
from llm_fakes import USAGE, ScriptedLLM, Stall, fake_llm_server, last_tool_results

METHOD = """import numpy as np

def run(ctx):
    student = ctx.strong_model(epochs=5)
    student.fit(ctx.inputs("train_unlabel"), ctx.weak_soft_labels("train_unlabel"))
    return student.predict_proba(ctx.inputs("test"))
"""


WEAK_PREDICTIONS = """import json
rows = [json.loads(line) for line in open('/task/weak/test.jsonl')]
json.dump({'predictions': [row['p'] for row in rows]}, open('/workspace/preds.json', 'w'))
"""


def _from_last(body: dict[str, Any], key: str) -> Any:
    for text in last_tool_results(body):
        match = re.search(rf'"{key}": ?"?([0-9a-f]+)', text)
        if match:
            return match.group(1)
    raise AssertionError(f"no {key} in the last tool results: {last_tool_results(body)}")


def every_tool_script() -> list:
    return [
        lambda b: [("write_file", {"path": "method/method.py", "content": METHOD}), ("list_files", {})],
        lambda b: [("read_file", {"path": "method/method.py"}),
                   ("edit_file", {"path": "method/method.py", "old_text": "epochs=5", "new_text": "epochs=8"})],
        lambda b: [("read_file", {"path": "no/such/file.py"}), ("no_such_tool", {})],  # two tool errors
        lambda b: [("bash", {"command": "ls /task && echo sandboxed-ok"}),
                   ("python", {"code": "import autow2s, sys; print('py', sys.version_info[0])"})],
        lambda b: [("run_experiment", {"method_dir": "method", "seeds": [1], "quick": True})],
        lambda b: [("python", {"code": WEAK_PREDICTIONS})],
        lambda b: [("evaluate_predictions", {"predictions_file": "preds.json"})],
        lambda b: [("share_finding", {"type": "result", "title": "vanilla on mini", "body": "quick run",
                                      "evaluation_id": int(_from_last(b, "evaluation_id"))})],
        lambda b: [("search_findings", {"query": "vanilla"}), ("leaderboard", {})],
        lambda b: [("read_finding", {"finding_id": 1}), ("comment", {"finding_id": 1, "body": "replicated"}),
                   ("vote", {"finding_id": 1, "value": 1})],
        lambda b: [("save_snapshot", {"method_dir": "method", "message": "vanilla, 8 epochs"})],
        lambda b: [("download_snapshot", {"snapshot_id": _from_last(b, "snapshot_id")}),
                   ("request_verification", {"snapshot_id": _from_last(b, "snapshot_id")})],
        lambda b: [("lab_status", {}), ("wait", {"timeout_s": 1})],
        lambda b: [("notebook", {"action": "append", "text": "vanilla works; verify requested"}),
                   ("notebook", {"action": "read"})],
        lambda b: "This iteration is done.",
    ]


@pytest.fixture()
def toolbox(lab_data: Path, tmp_path: Path) -> Iterator[ToolBox]:
    with start_lab(lab_data, tmp_path / "state") as lab, LocalExecutor(tmp_path / "jobs") as executor:
        token = lab.create_researcher("llm-1")
        workspace = tmp_path / "workspace"
        workspace.mkdir()
        yield ToolBox(name="llm-1", tasks=("mini",), workspace=workspace, task_view=lab_data / "mini" / "public",
                      lab=LabClient(lab.url, token), executor=executor, notebook_path=tmp_path / "notebook.md",
                      hidden=(lab_data / "mini" / "lab",))


def _chat(kind: str, base_url: str):
    if kind == "claude":
        return AnthropicChat(DEFAULT_CLAUDE_MODEL, api_key="sk-ant-test", base_url=base_url)
    return OpenAIChat("fake-gpt", api_key="sk-test", base_url=f"{base_url}/v1")


@pytest.mark.parametrize("kind", ["claude", "openai"])
def test_scripted_conversation_calls_every_tool(kind: str, toolbox: ToolBox, tmp_path: Path) -> None:
    script = ScriptedLLM(every_tool_script())
    ledger = Ledger(prices=dict(DEFAULT_PRICES), journal=tmp_path / "spend.jsonl")
    transcript = tmp_path / "transcript.jsonl"
    with fake_llm_server(script) as url:
        outcome = LLMPolicy(chat=_chat(kind, url), ledger=ledger).run_iteration(
            toolbox, BUILTIN_DIRECTIONS[0], 0, transcript)
    assert (outcome.reason, outcome.calls_made) == ("end_turn", 24)
    entries = [json.loads(line) for line in transcript.read_text().splitlines()]
    called = {e["tool"] for e in entries if "tool" in e}
    assert set(TOOL_NAMES) <= called
    results = {e["tool"]: e["result"] for e in entries if "tool" in e}
    assert results["no_such_tool"].startswith("error: unknown tool")
    assert any(e["tool"] == "read_file" and "no such file" in e["result"] for e in entries if "tool" in e)
    assert "sandboxed-ok" in results["bash"] and "exit 0" in results["bash"]
    experiment = json.loads(results["run_experiment"])
    assert experiment["per_seed"][0]["dev_pgr"] is not None, experiment
    assert "error" not in results["share_finding"][:10]
    assert (toolbox.workspace / "prior_work").is_dir()
    assert "verify requested" in toolbox.notebook_path.read_text()
    # The conversation went over the wire: tools offered, tool results returned, one request per turn.
    assert len(script.requests) == len(every_tool_script())
    first = script.requests[0]
    if kind == "claude":
        assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert {t["name"] for t in first["tools"]} == set(TOOL_NAMES)
        sent = script.headers[0]
        assert "sk-ant-test" in (sent.get("x-api-key", ""), sent.get("authorization", "").removeprefix("Bearer "))
        assert "anthropic-version" in sent
    else:
        assert first["messages"][0]["role"] == "system"
        assert {t["function"]["name"] for t in first["tools"]} == set(TOOL_NAMES)
        assert script.headers[0]["authorization"] == "Bearer sk-test"
    # Every turn was charged at the model's list price and journaled.
    turns = len(every_tool_script())
    assert ledger.spent["llm-1"] == pytest.approx(turns * _turn_cost(kind, ledger))
    assert len((tmp_path / "spend.jsonl").read_text().splitlines()) == turns
    status = json.loads(results["lab_status"])
    assert status["evaluations_total"] == 2 and len(status["verifications"]) == 1
    assert [name for name, _ in replay_calls(transcript)][:2] == ["write_file", "list_files"]


def _turn_cost(kind: str, ledger: Ledger) -> float:
    return cost(Usage(**USAGE), ledger.price(DEFAULT_CLAUDE_MODEL if kind == "claude" else "fake-gpt"))


@pytest.mark.parametrize("kind", ["claude", "openai"])
def test_conversation_stops_at_the_dollar_cap(kind: str, toolbox: ToolBox, tmp_path: Path) -> None:
    looping = [lambda b: [("list_files", {})]] * 50
    script = ScriptedLLM(looping)
    ledger = Ledger(prices=dict(DEFAULT_PRICES), researcher_cap=4.0)
    with fake_llm_server(script) as url:
        outcome = LLMPolicy(chat=_chat(kind, url), ledger=ledger, max_turns=50).run_iteration(
            toolbox, BUILTIN_DIRECTIONS[1], 0, tmp_path / "t.jsonl")
    per_turn = _turn_cost(kind, ledger)
    turns = math.ceil(4.0 / per_turn)  # the turn that would start at or past $4 does not start
    assert (outcome.reason, outcome.turns) == ("cap", turns)
    assert len(script.requests) == turns
    assert ledger.spent["llm-1"] == pytest.approx(turns * per_turn)


def test_malformed_tool_arguments_come_back_as_an_error(toolbox: ToolBox, tmp_path: Path) -> None:
    script = ScriptedLLM([lambda b: [("read_file", "{not json")], lambda b: "ok"])
    with fake_llm_server(script) as url:
        LLMPolicy(chat=_chat("openai", url), ledger=Ledger(prices=dict(DEFAULT_PRICES))).run_iteration(
            toolbox, BUILTIN_DIRECTIONS[2], 0, tmp_path / "t.jsonl")
    assert "not a JSON object" in last_tool_results(script.requests[1])[0]


# -- prices ----------------------------------------------------------------------------------------------------

def test_claude_haiku_5_5_is_priced_with_its_long_context_tier(tmp_path: Path) -> None:
    from autow2s.researchers.accounting import load_prices, save_prices

    price = DEFAULT_PRICES["claude-haiku-5-5"]
    million = 1_000_000
    # At or below 100k input tokens: $0.10 / $0.50 per MTok, 40x cheaper than the default Opus.
    assert cost(Usage(input_tokens=100_000, output_tokens=million), price) == pytest.approx(0.01 + 0.50)
    typical = Usage(input_tokens=40_000, output_tokens=1_500)
    assert cost(typical, DEFAULT_PRICES[DEFAULT_CLAUDE_MODEL]) == pytest.approx(40 * cost(typical, price))
    # Above it the whole request is charged at $0.50 / $2.50, and cache reads count towards the threshold
    # (at the tier's own cache rate, 0.1 x its input).
    assert cost(Usage(input_tokens=100_001, output_tokens=million), price) == pytest.approx(100_001 * 0.5e-6 + 2.50)
    assert cost(Usage(input_tokens=1_000, cache_read_tokens=150_000), price) == pytest.approx(
        1_000 * 0.5e-6 + 150_000 * 0.05e-6)
    # A request charged in parts (input when its stream starts, output when it ends) keeps its tier.
    ledger = Ledger(prices=dict(DEFAULT_PRICES))
    assert ledger.charge("r", "claude-haiku-5-5", Usage(output_tokens=million), request_input=150_000) == \
        pytest.approx(2.50)
    # The table saved with a run (and reloaded on resume) keeps the tier.
    save_prices(DEFAULT_PRICES, tmp_path / "prices.json")
    assert load_prices(tmp_path / "prices.json")["claude-haiku-5-5"] == price


# -- the agent-sdk researcher: spend, budget and one tool call at a time -----------------------------------------

def _agent(toolbox: ToolBox, ledger: Ledger, tmp_path: Path, base_url: str | None = None):
    pytest.importorskip("claude_agent_sdk", reason="pip install 'autow2s[agent-sdk]'")
    from autow2s.researchers.agent_sdk import AgentSDKResearcher

    return AgentSDKResearcher(toolbox=toolbox, direction=BUILTIN_DIRECTIONS[0], ledger=ledger,
                              researcher_dir=tmp_path / "agent", base_url=base_url)


@pytest.mark.slow  # the real Claude Code CLI, or two sandboxed jobs one after the other
def test_agent_sdk_spend_cancelled_mid_iteration_is_charged(toolbox: ToolBox, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude-config"))  # not the user's ~/.claude
    # Turn 1 lists files; turn 2 starts streaming (its input tokens are said) and then the model stalls.
    script = ScriptedLLM([lambda b: [("mcp__autow2s__list_files", {})], lambda b: Stall(seconds=300)], thinking=False)
    ledger = Ledger(prices=dict(DEFAULT_PRICES), journal=tmp_path / "spend.jsonl")
    stop = threading.Event()
    toolbox.stop = stop

    def stop_during_turn_two() -> None:
        deadline = time.monotonic() + 120
        while len(script.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        stop.set()

    with fake_llm_server(script) as url:
        agent = _agent(toolbox, ledger, tmp_path, base_url=url)
        (tmp_path / "agent").mkdir()
        threading.Thread(target=stop_during_turn_two, daemon=True).start()
        outcome = agent.step(0)
    assert len(script.requests) == 2 and outcome.reason == "deadline" and outcome.calls_made == 1
    # Turn 1 whole (200k in, 20k out) and turn 2's input (200k in, its first output token), at the list price.
    price = ledger.price(DEFAULT_CLAUDE_MODEL)
    expected = cost(Usage(**USAGE), price) + cost(Usage(input_tokens=USAGE["input_tokens"], output_tokens=1), price)
    assert ledger.spent["llm-1"] == pytest.approx(expected)
    assert outcome.dollars == pytest.approx(expected)
    assert Ledger(prices=dict(DEFAULT_PRICES), journal=tmp_path / "spend.jsonl").spent["llm-1"] == pytest.approx(
        expected)  # journaled, so a resumed campaign counts it


def test_agent_sdk_budget_is_the_smaller_of_the_researchers_and_the_campaigns(toolbox: ToolBox,
                                                                              tmp_path: Path) -> None:
    ledger = Ledger(prices=dict(DEFAULT_PRICES), researcher_cap=25.0, campaign_cap=200.0)
    agent = _agent(toolbox, ledger, tmp_path)
    ledger.spent.update({"llm-1": 5.0, "llm-2": 188.0})  # other researchers spent most of the campaign's dollars
    assert agent.options(agent.limits()).max_budget_usd == pytest.approx(7.0)
    ledger.spent["llm-2"] = 100.0
    assert agent.options(agent.limits()).max_budget_usd == pytest.approx(20.0)
    assert _agent(toolbox, Ledger(prices=dict(DEFAULT_PRICES), campaign_cap=3.0), tmp_path).options(
        agent.limits()).max_budget_usd == pytest.approx(3.0)


@pytest.mark.slow  # the real Claude Code CLI, or two sandboxed jobs one after the other
def test_agent_sdk_tool_calls_reach_the_toolbox_one_at_a_time(toolbox: ToolBox, tmp_path: Path) -> None:
    import anyio
    from mcp.client.client import Client

    from autow2s.researchers.agent_sdk import SERVER_NAME

    agent = _agent(toolbox, Ledger(prices=dict(DEFAULT_PRICES)), tmp_path)
    server = agent.options(agent.limits()).mcp_servers[SERVER_NAME]["instance"]
    outputs: list[str] = []

    async def call(client: Client) -> None:
        result = await client.call_tool("bash", {"command": "date +%s.%N; sleep 3; date +%s.%N"})
        outputs.append("\n".join(block.text for block in result.content if getattr(block, "type", "") == "text"))

    async def both() -> None:
        async with Client(server) as client, anyio.create_task_group() as group:
            group.start_soon(call, client)
            group.start_soon(call, client)

    anyio.run(both)
    spans = sorted(tuple(float(t) for t in re.findall(r"\b(\d{10}\.\d+)\b", text)[:2]) for text in outputs)
    assert len(spans) == 2 and all(len(span) == 2 for span in spans), outputs
    assert spans[0][1] <= spans[1][0], f"two tool calls ran at once: {spans}"
