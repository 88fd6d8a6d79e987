"""A provider that stalls, and one whose model has a short context, met by a real researcher.

The provider is a local server speaking the Anthropic or OpenAI wire protocol (tests/llm_fakes.py),
reached through the official SDKs; the lab, the toolbox, the sandbox and the researcher's loop are
real. A stalled answer must not hold a researcher past the campaign's stop or deadline (the
campaign waits for its researchers before it verifies anything), and its tokens are still charged.
A context-length refusal must shrink the conversation, not end the researcher.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autow2s.campaign.researchers import ResearcherStatus, ResearcherWorker, make_step
from autow2s.researchers.accounting import DEFAULT_CLAUDE_MODEL, DEFAULT_PRICES, Ledger, Usage, cost
from autow2s.researchers.chat import AnthropicChat, OpenAIChat
from autow2s.researchers.directions import BUILTIN_DIRECTIONS
from autow2s.researchers.llm_policy import DEFAULT_CONTEXT_TOKENS, LLMPolicy
from autow2s.researchers.toolbox import ToolBox
from lab_helpers import LabServer, lab_data, start_lab  # noqa: F401 - fixture
from llm_fakes import USAGE, Fault, ScriptedLLM, Stall, fake_llm_server, request_tokens
from toolbox_helpers import toolbox_factory

KINDS = ["claude", "openai"]
CONTEXT_LIMIT = 16_000  # the fake model's context, in its own (stricter) tokens
BIG_FILE = "\n".join(f"line {i} " + "x" * 50 for i in range(150))  # ~9,000 characters a read


@pytest.fixture(scope="module")
def lab(lab_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    with start_lab(lab_data, tmp_path_factory.mktemp("provider-faults-lab")) as server:
        yield server


@pytest.fixture()
def make_toolbox(lab: LabServer, lab_data: Path, tmp_path: Path) -> Iterator[Callable[..., ToolBox]]:
    with toolbox_factory(lab, lab_data, tmp_path) as make:
        yield make


@pytest.fixture()
def api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")


def _chat(kind: str, url: str) -> AnthropicChat | OpenAIChat:
    if kind == "claude":
        return AnthropicChat(DEFAULT_CLAUDE_MODEL, api_key="sk-ant-test", base_url=url)
    return OpenAIChat("fake-gpt", api_key="sk-test", base_url=f"{url}/v1")


def _step(kind: str, toolbox: ToolBox, url: str, ledger: Ledger, researcher_dir: Path, **options: object):
    model, base = (None, url) if kind == "claude" else ("fake-gpt", f"{url}/v1")
    return make_step(kind, toolbox, BUILTIN_DIRECTIONS[0], 1, researcher_dir, ledger, model, base, None, **options)


def _wait_for(predicate: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _model(kind: str) -> str:
    return DEFAULT_CLAUDE_MODEL if kind == "claude" else "fake-gpt"


@pytest.mark.parametrize("kind", KINDS)
def test_a_stalled_provider_lets_the_researcher_stop_at_once_and_is_still_charged(
        kind: str, make_toolbox, tmp_path: Path, api_keys: None) -> None:
    stop = threading.Event()
    toolbox = make_toolbox(f"stalled-{kind}", stop=stop)
    script = ScriptedLLM([lambda b: Stall(seconds=300)])
    ledger = Ledger(prices=dict(DEFAULT_PRICES))
    status = ResearcherStatus(name=toolbox.name, kind=kind, direction="d")
    with fake_llm_server(script) as url:
        step = _step(kind, toolbox, url, ledger, tmp_path / "researcher", status=status)
        worker = ResearcherWorker(status, toolbox, step, stop, time.monotonic() + 3600, tmp_path / "worker.log")
        worker.start()
        assert _wait_for(lambda: script.requests, 60)
        time.sleep(1.0)  # the model is "thinking": nothing comes back
        stop.set()
        stopped = time.monotonic()
        assert worker.thread is not None
        worker.thread.join(timeout=30)
        took = time.monotonic() - stopped
        assert not worker.thread.is_alive() and took < 5, f"the researcher took {took:.1f} s to stop"
        assert status.state == "stopped", status
        if kind == "claude":  # the stream had said its input tokens when it was abandoned: they are charged
            partial = cost(Usage(input_tokens=USAGE["input_tokens"], output_tokens=1), ledger.price(_model(kind)))
            assert ledger.spent[toolbox.name] == pytest.approx(partial)
        else:  # an unstreamed request has told nothing yet
            assert ledger.spent.get(toolbox.name, 0.0) == 0.0
    # Leaving the fake ends its stall: the abandoned OpenAI request's late answer is charged when it comes,
    # and the abandoned Anthropic stream, already charged, is not charged again.
    if kind == "openai":
        assert _wait_for(lambda: ledger.spent.get(toolbox.name, 0.0) > 0, 10)
        assert ledger.spent[toolbox.name] == pytest.approx(cost(Usage(**USAGE), ledger.price(_model(kind))))
    else:
        time.sleep(0.5)
        assert ledger.spent[toolbox.name] == pytest.approx(partial)
    assert len(script.requests) == 1  # no turn started after the stop


@pytest.mark.slow  # waits out a 5 s deadline by design
@pytest.mark.parametrize("kind", KINDS)
def test_a_provider_stalled_past_the_deadline_ends_the_iteration_at_the_deadline(
        kind: str, make_toolbox, tmp_path: Path) -> None:
    toolbox = make_toolbox(f"late-{kind}")
    script = ScriptedLLM([lambda b: [("list_files", {})], lambda b: Stall(seconds=40)])
    with fake_llm_server(script) as url:
        policy = LLMPolicy(chat=_chat(kind, url), ledger=Ledger(prices=dict(DEFAULT_PRICES)))
        toolbox.deadline = time.monotonic() + 5.0
        outcome = policy.run_iteration(toolbox, BUILTIN_DIRECTIONS[0], 0, tmp_path / "t.jsonl")
        late = time.monotonic() - toolbox.deadline
    assert len(script.requests) == 2, "the second turn should have been in flight at the deadline"
    assert (outcome.reason, outcome.turns, outcome.calls_made) == ("deadline", 1, 1)
    assert late < 3, f"the iteration ended {late:.1f} s after the deadline"


def _read_big_file_eight_times() -> list:
    return [lambda b: [("read_file", {"path": "big.txt"})]] * 8 + [lambda b: "done"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_context_length_refusal_is_survived_with_a_smaller_context(kind: str, make_toolbox, tmp_path: Path) -> None:
    toolbox = make_toolbox(f"short-{kind}")
    (toolbox.workspace / "big.txt").write_text(BIG_FILE)
    script = ScriptedLLM(_read_big_file_eight_times(), context_limit=CONTEXT_LIMIT)
    ledger = Ledger(prices=dict(DEFAULT_PRICES))
    with fake_llm_server(script) as url:
        policy = LLMPolicy(chat=_chat(kind, url), ledger=ledger)
        outcome = policy.run_iteration(toolbox, BUILTIN_DIRECTIONS[0], 0, tmp_path / "t.jsonl")
    assert (outcome.reason, outcome.calls_made) == ("end_turn", 8)
    assert script.too_long, "the server never refused: the test did not reach the model's context"
    # The budget learnt from the refusal holds: later turns are compacted before they are sent.
    assert len(script.too_long) <= 2, script.too_long
    assert policy.context_tokens < DEFAULT_CONTEXT_TOKENS
    answered = script.requests[-1]
    completion = 0 if kind == "claude" else answered["max_tokens"]
    assert request_tokens(answered) + completion <= CONTEXT_LIMIT
    final = json.dumps(answered["messages"])
    assert "[summarized to save context: read_file -> line 0" in final and "[context note:" in final
    assert "line 149 " in final  # the newest result is whole
    # The refused requests cost nothing; each answered turn was charged once.
    assert ledger.spent[toolbox.name] == pytest.approx(9 * cost(Usage(**USAGE), ledger.price(_model(kind))))
    assert "the history is compacted from a 120,000-token budget" in toolbox.error_log.read_text()


def test_context_tokens_reaches_the_policy_and_keeps_requests_under_the_limit(
        make_toolbox, tmp_path: Path, api_keys: None) -> None:
    toolbox = make_toolbox("budgeted")
    (toolbox.workspace / "big.txt").write_text(BIG_FILE)
    script = ScriptedLLM(_read_big_file_eight_times(), context_limit=CONTEXT_LIMIT)
    with fake_llm_server(script) as url:
        step = _step("openai", toolbox, url, Ledger(prices=dict(DEFAULT_PRICES)), tmp_path / "researcher",
                     context_tokens=4_000)
        outcome = step(0)
    assert (outcome.reason, outcome.calls_made) == ("end_turn", 8)
    assert script.too_long == []  # compacted to the given budget before the server had to refuse


def test_a_conversation_that_cannot_fit_even_compacted_is_refused_with_what_to_do(make_toolbox, tmp_path: Path) -> None:
    from autow2s.errors import ProviderRejected

    toolbox = make_toolbox("tiny")
    script = ScriptedLLM([lambda b: "done"], context_limit=2_000)  # less than the system prompt and tools
    with fake_llm_server(script) as url, pytest.raises(ProviderRejected, match="longer context"):
        LLMPolicy(chat=_chat("openai", url), ledger=Ledger(prices=dict(DEFAULT_PRICES))).run_iteration(
            toolbox, BUILTIN_DIRECTIONS[0], 0, tmp_path / "t.jsonl")
    assert len(script.too_long) == 1  # refused at once, not retried in a loop


def test_an_error_event_inside_a_streamed_answer_is_retried_and_its_tokens_charged(make_toolbox, tmp_path: Path) -> None:
    toolbox = make_toolbox("midstream")
    script = ScriptedLLM([lambda b: Fault(529, midstream=True), lambda b: Fault(529, midstream=True),
                          lambda b: "done"])
    ledger = Ledger(prices=dict(DEFAULT_PRICES))
    with fake_llm_server(script) as url:
        outcome = LLMPolicy(chat=_chat("claude", url), ledger=ledger).run_iteration(
            toolbox, BUILTIN_DIRECTIONS[0], 0, tmp_path / "t.jsonl")
    assert (outcome.reason, len(script.requests)) == ("end_turn", 3)
    price = ledger.price(DEFAULT_CLAUDE_MODEL)
    broken = cost(Usage(input_tokens=USAGE["input_tokens"], output_tokens=1), price)  # what each broken stream said
    assert ledger.spent[toolbox.name] == pytest.approx(2 * broken + cost(Usage(**USAGE), price))


def test_context_tokens_is_a_campaign_setting_with_the_policys_default() -> None:
    from typer.testing import CliRunner

    from autow2s.campaign.state import CampaignConfig
    from autow2s.cli import app

    assert CampaignConfig().context_tokens == DEFAULT_CONTEXT_TOKENS
    saved = CampaignConfig(context_tokens=24_000).to_json()
    assert CampaignConfig.from_json(saved).context_tokens == 24_000
    saved.pop("context_tokens")  # a run directory from before the flag resumes with the default
    assert CampaignConfig.from_json(saved).context_tokens == DEFAULT_CONTEXT_TOKENS
    refused = CliRunner().invoke(app, ["run", "--context-tokens", "100", "--budget", "5"])
    assert refused.exit_code == 2 and "--context-tokens" in refused.output, refused.output
