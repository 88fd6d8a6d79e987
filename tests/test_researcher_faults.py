"""Faults a real agent meets, injected through the real toolbox, lab, sandbox and SDK clients.

The LLM provider is the only thing faked, by a local server speaking its wire protocol; it can
answer 529s, 401s and 400s. Every fault must come back to the model as one error line, land in
the researcher's error log, and leave the researcher able to make its next tool call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from autow2s.errors import ProviderRejected, ProviderUnavailable
from autow2s.researchers.accounting import DEFAULT_CLAUDE_MODEL, DEFAULT_PRICES, Ledger
from autow2s.researchers.chat import AnthropicChat, OpenAIChat
from autow2s.researchers.directions import BUILTIN_DIRECTIONS
from autow2s.researchers.llm_policy import LLMPolicy
from autow2s.researchers.toolbox import ToolBox
from lab_helpers import LabServer, lab_data, start_lab  # noqa: F401 - fixture
from llm_fakes import FILE_FAULTS, FILE_FAULTS_LOGGED, Fault, ScriptedLLM, fake_llm_server
from toolbox_helpers import toolbox_factory


@pytest.fixture(scope="module")
def lab(lab_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    with start_lab(lab_data, tmp_path_factory.mktemp("faults-lab")) as server:
        yield server


@pytest.fixture()
def make_toolbox(lab: LabServer, lab_data: Path, tmp_path: Path) -> Iterator:
    with toolbox_factory(lab, lab_data, tmp_path) as make:
        yield make


def _openai(url: str, error_log: Path | None = None, **options) -> OpenAIChat:
    return OpenAIChat("fake-gpt", api_key="sk-test", base_url=f"{url}/v1", error_log=error_log, **options)


def test_faults_come_back_as_errors_and_the_researcher_reaches_its_next_call(make_toolbox, tmp_path: Path) -> None:
    toolbox = make_toolbox("faulty")
    script = ScriptedLLM([
        *FILE_FAULTS,
        lambda b: [("read_finding", {"finding_id": "three"}), ("run_experiment", {"method_dir": "m", "seeds": "1"})],
        lambda b: Fault(529), lambda b: Fault(529), lambda b: Fault(529), lambda b: Fault(529),
        lambda b: Fault(0),  # and a connection reset
        lambda b: [("list_files", {})],
        lambda b: "done for now",
    ])
    transcript = tmp_path / "transcript.jsonl"
    with fake_llm_server(script) as url:
        chat = _openai(url, toolbox.error_log, provider_retry_s=60)
        outcome = LLMPolicy(chat=chat, ledger=Ledger(prices=dict(DEFAULT_PRICES))).run_iteration(
            toolbox, BUILTIN_DIRECTIONS[0], 0, transcript)
    assert (outcome.reason, outcome.calls_made) == ("end_turn", 9)
    results = [json.loads(line) for line in transcript.read_text().splitlines() if '"tool"' in line]
    errors = [r["result"] for r in results if r["result"].startswith("error:")]
    assert len(errors) == 6, errors
    assert all("\n" not in e for e in errors), errors  # one line each
    assert results[-1]["tool"] == "list_files" and "/reference/METHOD_API.md" in results[-1]["result"]
    log = toolbox.error_log.read_text()
    for expected in (*FILE_FAULTS_LOGGED, "finding_id must be an integer", "seeds must be an array"):
        assert expected in log, (expected, log)
    assert log.count("waiting for the provider: 529") == 4
    assert log.count("waiting for the provider: APIConnectionError") == 1


def test_a_bug_in_a_tool_is_logged_with_its_traceback_and_returned_as_an_error(make_toolbox) -> None:
    class Broken(ToolBox):
        def _tool_leaderboard(self) -> None:
            return {"rows": 1 / 0}  # a bug in autow2s itself

    toolbox = make_toolbox("buggy")
    broken = Broken(**{f: getattr(toolbox, f) for f in toolbox.__dataclass_fields__})
    text = broken.call("leaderboard", {})
    assert text.startswith("error: leaderboard failed inside autow2s (ZeroDivisionError")
    log = broken.error_log.read_text()
    assert "Traceback (most recent call last)" in log and "ZeroDivisionError" in log
    assert "/reference/METHOD_API.md" in broken.call("list_files", {})  # and it goes on


@pytest.mark.parametrize("kind", ["claude", "openai"])
def test_provider_retry_gives_up_as_unavailable_and_rejects_a_bad_key(kind: str, tmp_path: Path) -> None:
    waits: list[str | None] = []
    script = ScriptedLLM([lambda b: Fault(529, retry_after_ms=150)] * 20 + [lambda b: Fault(401, message="bad key")])
    with fake_llm_server(script) as url:
        options = {"error_log": tmp_path / "errors.log", "provider_retry_s": 1.0, "on_wait": waits.append}
        chat = (AnthropicChat(DEFAULT_CLAUDE_MODEL, api_key="sk-ant-test", base_url=url, **options)
                if kind == "claude" else _openai(url, **options))
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="kept failing"):
            chat.turn("system", chat.start("hi"), ())
        assert time.monotonic() - started < 5
        # Retried (more than one request), and never faster than the 150 ms retry-after allows: at most 1 s / 150 ms
        # + the first. How many fit in the second depends on the machine's load, so no tighter lower bound.
        assert 2 <= len(script.requests) <= 8
        assert waits[0].startswith("waiting for the provider: 529") and waits[-1] is None
        script.position = 20  # the next answer is a 401
        with pytest.raises(ProviderRejected, match="refused the request"):
            chat.turn("system", chat.start("hi"), ())
    assert "rejected: 401" in (tmp_path / "errors.log").read_text()


def test_a_deadline_stops_turns_and_bounds_jobs(make_toolbox, tmp_path: Path) -> None:
    toolbox = make_toolbox("late")
    toolbox.deadline = time.monotonic() + 8.0
    started = time.monotonic()
    text = toolbox.call("bash", {"command": "sleep 60; echo never"})
    assert time.monotonic() - started < 30
    assert "wall time limit hit" in text and "never" not in text
    assert toolbox.call("bash", {"command": "echo hi"}).startswith("error: the campaign's time is up")
    script = ScriptedLLM([lambda b: [("list_files", {})]])
    with fake_llm_server(script) as url:
        outcome = LLMPolicy(chat=_openai(url), ledger=Ledger(prices=dict(DEFAULT_PRICES))).run_iteration(
            toolbox, BUILTIN_DIRECTIONS[0], 0, tmp_path / "t.jsonl")
    assert (outcome.reason, outcome.turns, outcome.calls_made) == ("deadline", 0, 0)
    assert script.requests == []


def test_the_campaign_stopping_cancels_a_running_job(make_toolbox) -> None:
    stop = threading.Event()
    toolbox = make_toolbox("stopped", stop=stop)
    threading.Timer(3.0, stop.set).start()
    started = time.monotonic()
    text = toolbox.call("bash", {"command": "sleep 120; echo never"})
    assert time.monotonic() - started < 30 and "never" not in text and "cancel" in text.lower(), text
    assert toolbox.call("bash", {"command": "echo hi"}).startswith("error: the campaign is stopping")


def test_thinking_blocks_go_back_exactly_as_received(make_toolbox, tmp_path: Path) -> None:
    toolbox = make_toolbox("thinker")
    script = ScriptedLLM([lambda b: [("list_files", {})], lambda b: [("notebook", {"action": "read"})],
                          lambda b: [("lab_status", {})], lambda b: "done"], redacted=True)
    with fake_llm_server(script) as url:
        chat = AnthropicChat(DEFAULT_CLAUDE_MODEL, api_key="sk-ant-test", base_url=url)
        outcome = LLMPolicy(chat=chat, ledger=Ledger(prices=dict(DEFAULT_PRICES))).run_iteration(
            toolbox, BUILTIN_DIRECTIONS[0], 0, tmp_path / "t.jsonl")
        assert (outcome.reason, outcome.calls_made, script.rejected) == ("end_turn", 3, [])
        last = script.requests[-1]["messages"]
        assert [m["content"] for m in last if m["role"] == "assistant"] == script.sent[:3]
        assert script.sent[0][0]["type"] == "thinking" and script.sent[0][1]["type"] == "redacted_thinking"
        assert script.requests[0]["max_tokens"] >= 16_000  # room for thinking, which counts against it
        # The newest block carries a cache breakpoint (the history is read from the cache next turn);
        # earlier messages go back without it, exactly as they were.
        assert script.requests[1]["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
        assert script.requests[1]["messages"][0]["content"] == script.requests[0]["messages"][0]["content"][0]["text"]
        # The fake enforces what the real API does: a follow-up that drops the thinking is refused...
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=url, max_retries=0)
        dropped = [{"role": "user", "content": "go"},
                   {"role": "assistant", "content": [b for b in script.sent[0] if "thinking" not in b["type"]]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0_0", "content": "x"}]}]
        with pytest.raises(anthropic.BadRequestError, match="Expected `thinking`"):
            client.messages.create(model=DEFAULT_CLAUDE_MODEL, max_tokens=1000, messages=dropped)
        # ... and the adapter turns that refusal into ProviderRejected, not a retry loop.
        with pytest.raises(ProviderRejected):
            chat.turn("system", dropped, ())


def test_long_output_keeps_head_and_tail_and_says_how_to_read_the_rest(make_toolbox) -> None:
    toolbox = make_toolbox("reader")
    text = toolbox.call("bash", {"command": "seq 1 5000"})
    lines = text.splitlines()
    assert "1" in lines[:5] and "5000" in lines[-3:]
    marker = next(line for line in lines if "lines cut from stdout" in line)
    path = marker.split("read_file path=")[1].split()[0]
    start = int(marker.split("start_line=")[1].split()[0])
    middle = toolbox.call("read_file", {"path": path, "start_line": start, "end_line": start + 2})
    assert f"{start:>6}  {start}" in middle  # stdout line n is the number n
    big = toolbox.call("read_file", {"path": path})
    assert "read_file path=" in big and "5000" in big.splitlines()[-1]


def test_old_tool_results_are_summarized_past_the_context_budget(make_toolbox, tmp_path: Path) -> None:
    toolbox = make_toolbox("chatty")
    (toolbox.workspace / "big.txt").write_text("\n".join(f"line {i} " + "x" * 50 for i in range(150)))
    script = ScriptedLLM([lambda b: [("read_file", {"path": "big.txt"})]] * 8 + [lambda b: "done"])
    with fake_llm_server(script) as url:
        LLMPolicy(chat=_openai(url), ledger=Ledger(prices=dict(DEFAULT_PRICES)), context_tokens=6_000).run_iteration(
            toolbox, BUILTIN_DIRECTIONS[0], 0, tmp_path / "t.jsonl")
    final = script.requests[-1]["messages"]
    tool_texts = [m["content"] for m in final if m["role"] == "tool"]
    assert tool_texts[0].startswith("[summarized to save context: read_file -> line 0")
    assert tool_texts[-1].startswith("line 0")  # the newest results stay whole
    assert any("[context note:" in text for text in tool_texts)
    assert len(json.dumps(final[1:])) // 4 <= 6_000  # the conversation (less the system prompt) fits again


def test_wait_returns_on_a_new_finding_and_otherwise_times_out(make_toolbox, lab: LabServer) -> None:
    toolbox = make_toolbox("waiter")
    toolbox.poll_s = 0.2
    started = time.monotonic()
    assert "nothing new (timeout)" in toolbox.call("wait", {"timeout_s": 1})
    assert time.monotonic() - started < 10
    other = lab.client(lab.create_researcher("poster"))
    timer = threading.Timer(1.0, lambda: other.post("/api/v1/findings", json={
        "type": "insight", "title": "temperature helps", "body": "softer targets", "task": "mini"}))
    timer.start()
    started = time.monotonic()
    text = toolbox.call("wait", {"timeout_s": 60})
    timer.join()
    assert "new forum finding" in text and "temperature helps" in text
    assert time.monotonic() - started < 20
    stop = threading.Event()
    stop.set()
    toolbox.stop = stop
    assert "the campaign is stopping" in toolbox.call("wait", {"timeout_s": 60})


def test_the_prompt_states_the_limits_in_force(make_toolbox, tmp_path: Path) -> None:
    toolbox = make_toolbox("reader2")
    script = ScriptedLLM([lambda b: "done"])
    with fake_llm_server(script) as url:
        LLMPolicy(chat=_openai(url), ledger=Ledger(prices=dict(DEFAULT_PRICES)), max_turns=17).run_iteration(
            toolbox, BUILTIN_DIRECTIONS[0], 0, tmp_path / "t.jsonl")
    system = script.requests[0]["messages"][0]["content"]
    status = toolbox.lab.my_status("mini")
    evaluate, verify = status["budgets"]["evaluate"], status["budgets"]["verify"]
    for expected in (f"{toolbox.limits.wall_seconds:g} s of wall time", "MiB of memory",
                     f"{evaluate['total']} evaluate requests", f"at most {evaluate['rate_per_minute']} per minute",
                     f"{verify['total']} verify requests", f"{status['limits']['verify_seed_count']} lab-chosen seeds",
                     "at most 17 model turns", "/reference/METHOD_API.md", "/forum/"):
        assert expected in system, expected
    assert toolbox.call("read_file", {"path": "/reference/METHOD_API.md"}).count("ctx.strong_model") >= 2
    assert f"Budget left: {evaluate['left']} evaluations" in script.requests[0]["messages"][1]["content"]


def test_arguments_are_checked_against_the_schema_before_anything_runs(make_toolbox) -> None:
    from autow2s.researchers.tool_specs import validate_arguments

    assert validate_arguments("vote", {"finding_id": 1, "value": 1}) is None
    assert "must be an integer, got bool" in validate_arguments("vote", {"finding_id": True, "value": 1})
    assert "must be one of [-1, 0, 1]" in validate_arguments("vote", {"finding_id": 1, "value": 5})
    assert "at most 5 items" in validate_arguments("run_experiment", {"method_dir": "m", "seeds": [1] * 6})
    assert "seeds[1] must be an integer" in validate_arguments("run_experiment", {"method_dir": "m", "seeds": [1, "2"]})
    assert "unknown argument colour" in validate_arguments("leaderboard", {"colour": "red"})
    assert "missing required argument path" in validate_arguments("read_file", {})
    toolbox = make_toolbox("nulls")
    # A null for an optional argument means "left out" (models send them); for a required one it is missing.
    assert toolbox.call("list_files", {"path": None}).startswith("(no files in your workspace yet)\n/reference/")
    assert "missing required argument path" in toolbox.call("read_file", {"path": None})
    assert toolbox.call("read_file", {"path": "../../etc/passwd"}).startswith("error: path '../../etc/passwd' is outside")
