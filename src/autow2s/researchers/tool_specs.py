"""The one tool set every policy gets, as JSON schemas (rendered for Anthropic and OpenAI)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    side: str  # "sandbox" (runs inside the researcher's sandbox) or "lab" (trusted side, own token)

    def anthropic(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.parameters}

    def openai(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


def _schema(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


STR = {"type": "string"}
INT = {"type": "integer"}

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("bash", "Run a shell command in your sandbox (workspace at /workspace, task data read-only at "
             "/task, no network). Returns exit code and output.", _schema(["command"], command=STR), "sandbox"),
    ToolSpec("python", "Run a Python snippet in your sandbox with the project's environment (numpy, torch, "
             "autow2s). Returns exit code and output.", _schema(["code"], code=STR), "sandbox"),
    ToolSpec("read_file", "Read a text file in your workspace.", _schema(["path"], path=STR), "sandbox"),
    ToolSpec("write_file", "Create or overwrite a text file in your workspace.",
             _schema(["path", "content"], path=STR, content=STR), "sandbox"),
    ToolSpec("edit_file", "Replace one exact occurrence of old_text with new_text in a workspace file.",
             _schema(["path", "old_text", "new_text"], path=STR, old_text=STR, new_text=STR), "sandbox"),
    ToolSpec("list_files", "List files under a workspace directory.", _schema([], path=STR), "sandbox"),
    ToolSpec("run_experiment",
             "Run a method directory (method.py with run(ctx)) on the task over seeds in the sandbox; the lab "
             "scores each seed's test predictions on its dev split with your budget. quick=true trains on a "
             "quarter of train_unlabel for a fast signal.",
             _schema(["method_dir"], method_dir=STR, seeds={"type": "array", "items": INT, "maxItems": 5},
                     quick={"type": "boolean"}), "sandbox"),
    ToolSpec("evaluate_predictions", "Score a JSON file of test predictions ({\"predictions\": [...]}) on dev.",
             _schema(["predictions_file"], predictions_file=STR, snapshot_id=STR), "lab"),
    ToolSpec("share_finding", "Post a finding to the forum. type is result|hypothesis|insight|error; a result "
             "must cite one of your evaluation_id or verify_id (the lab shows its own figure for it).",
             _schema(["type", "title", "body"], type={"type": "string", "enum": ["result", "hypothesis", "insight",
                                                                                "error"]},
                     title=STR, body=STR, tags={"type": "array", "items": STR}, evaluation_id=INT, verify_id=INT),
             "lab"),
    ToolSpec("search_findings", "Full-text search of the forum (sort: new|top|discussed).",
             _schema([], query=STR, sort=STR, limit=INT), "lab"),
    ToolSpec("read_finding", "Read one finding with its comments.", _schema(["finding_id"], finding_id=INT), "lab"),
    ToolSpec("comment", "Comment on a finding.", _schema(["finding_id", "body"], finding_id=INT, body=STR), "lab"),
    ToolSpec("vote", "Vote on a finding (+1, 0 or -1).",
             _schema(["finding_id", "value"], finding_id=INT, value={"type": "integer", "enum": [-1, 0, 1]}), "lab"),
    ToolSpec("leaderboard", "The verified leaderboard for the task.", _schema([]), "lab"),
    ToolSpec("save_snapshot", "Save a method directory as a snapshot (optionally naming its parent snapshot).",
             _schema(["method_dir", "message"], method_dir=STR, message=STR, parent_id=STR), "lab"),
    ToolSpec("download_snapshot", "Download a snapshot into prior_work/<snapshot_id>/ in your workspace.",
             _schema(["snapshot_id"], snapshot_id=STR), "lab"),
    ToolSpec("request_verification", "Ask the lab to re-run a snapshot on seeds it chooses and score it on dev "
             "and the hidden holdout; this is what the leaderboard shows.",
             _schema(["snapshot_id"], snapshot_id=STR), "lab"),
    ToolSpec("notebook", "Your notes across iterations: action read, append (text) or write (text).",
             _schema(["action"], action={"type": "string", "enum": ["read", "append", "write"]}, text=STR), "lab"),
)

TOOL_NAMES: tuple[str, ...] = tuple(tool.name for tool in TOOLS)
