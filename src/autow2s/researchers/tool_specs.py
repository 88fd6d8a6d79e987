"""The one tool set every policy gets, as JSON schemas (rendered for Anthropic and OpenAI).

`validate_arguments` checks a call against its schema before anything runs, so a model that sends
a string where an integer belongs gets a one-line answer it can act on instead of a crash.
"""

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
LINE = {"type": "integer", "minimum": 1}
MAX_WAIT_S = 1800

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("bash", "Run a shell command in your sandbox (workspace at /workspace, task data read-only at "
             "/task, or /task/<name>/ per research task when there are several; no network). Returns exit code "
             "and output.", _schema(["command"], command=STR), "sandbox"),
    ToolSpec("python", "Run a Python snippet in your sandbox with the project's environment (numpy, torch, "
             "autow2s). Returns exit code and output.", _schema(["code"], code=STR), "sandbox"),
    ToolSpec("read_file", "Read a text file in your workspace, optionally only lines start_line..end_line "
             "(1-based, inclusive); long output names the lines it left out.",
             _schema(["path"], path=STR, start_line=LINE, end_line=LINE), "sandbox"),
    ToolSpec("write_file", "Create or overwrite a text file in your workspace.",
             _schema(["path", "content"], path=STR, content=STR), "sandbox"),
    ToolSpec("edit_file", "Replace one exact occurrence of old_text with new_text in a workspace file.",
             _schema(["path", "old_text", "new_text"], path=STR, old_text=STR, new_text=STR), "sandbox"),
    ToolSpec("list_files", "List files under a workspace directory.", _schema([], path=STR), "sandbox"),
    ToolSpec("run_experiment",
             "Run a method directory (method.py with run(ctx)) over seeds in the sandbox, on every research "
             "task (tasks picks some; each task's data is /task/<name>/ when there are several); the lab scores "
             "each seed's test predictions on the task's dev split with your budget (a seed whose predictions "
             "are identical to an earlier submission of yours is answered from it, free). Returns each seed's "
             "score, its ctx.log metrics and the stderr tail; with several tasks, per task under tasks, and "
             "mean_dev_pgr is the mean over the tasks (null if any task has no scored seed). quick=true trains "
             "on a quarter of train_unlabel.",
             _schema(["method_dir"], method_dir=STR,
                     seeds={"type": "array", "items": INT, "minItems": 1, "maxItems": 5},
                     quick={"type": "boolean"}, tasks={"type": "array", "items": STR, "minItems": 1}), "sandbox"),
    ToolSpec("evaluate_predictions", "Score a JSON file of test predictions ({\"predictions\": [...]}) on the dev "
             "split of a research task (task is required when there are several).",
             _schema(["predictions_file"], predictions_file=STR, task=STR, snapshot_id=STR), "lab"),
    ToolSpec("share_finding", "Post a finding to the forum. type is result|hypothesis|insight|error; a result "
             "must cite one of your evaluation_id or verify_id (the lab shows its own figure for it).",
             _schema(["type", "title", "body"], type={"type": "string", "enum": ["result", "hypothesis", "insight",
                                                                                "error"]},
                     title=STR, body=STR, tags={"type": "array", "items": STR}, evaluation_id=INT, verify_id=INT),
             "lab"),
    ToolSpec("search_findings", "Full-text search of the forum (sort: new|top|discussed).",
             _schema([], query=STR, sort={"type": "string", "enum": ["new", "top", "discussed"]},
                     limit={"type": "integer", "minimum": 1, "maximum": 50}), "lab"),
    ToolSpec("read_finding", "Read one finding with its comments.", _schema(["finding_id"], finding_id=INT), "lab"),
    ToolSpec("comment", "Comment on a finding.", _schema(["finding_id", "body"], finding_id=INT, body=STR), "lab"),
    ToolSpec("vote", "Vote on a finding (+1, 0 or -1).",
             _schema(["finding_id", "value"], finding_id=INT, value={"type": "integer", "enum": [-1, 0, 1]}), "lab"),
    ToolSpec("leaderboard", "The verified leaderboard for a research task (default: the first), best holdout "
             "PGR first (limit rows, default 20).",
             _schema([], limit={"type": "integer", "minimum": 1, "maximum": 100}, task=STR), "lab"),
    ToolSpec("save_snapshot", "Save a method directory as a snapshot (optionally naming its parent snapshot).",
             _schema(["method_dir", "message"], method_dir=STR, message=STR, parent_id=STR), "lab"),
    ToolSpec("download_snapshot", "Download a snapshot into prior_work/<snapshot_id>/ in your workspace.",
             _schema(["snapshot_id"], snapshot_id=STR), "lab"),
    ToolSpec("request_verification", "Ask the lab to re-run a snapshot on seeds it chooses and score it on dev "
             "and the hidden holdout, on every research task (one verified run, and one verify request of the "
             "budget, per task); this is what the leaderboard shows. Asking again for a snapshot already "
             "queued, running or verified returns that run (free).",
             _schema(["snapshot_id"], snapshot_id=STR), "lab"),
    ToolSpec("lab_status", "Your standing with the lab on a research task: your evaluations and verifications "
             "(ids, states, figures), budget and rate left, pending verifications; with several research tasks "
             "and no task, one such status per task. Free.", _schema([], task=STR), "lab"),
    ToolSpec("wait", "Pause without spending anything until one of your pending verifications (on any research "
             "task) finishes, a new "
             f"forum finding appears, or timeout_s passes (default 300, at most {MAX_WAIT_S}). Use it instead of "
             "polling.", _schema([], timeout_s={"type": "integer", "minimum": 1, "maximum": MAX_WAIT_S}), "lab"),
    ToolSpec("notebook", "Your notes across iterations: action read, append (text) or write (text).",
             _schema(["action"], action={"type": "string", "enum": ["read", "append", "write"]}, text=STR), "lab"),
)

TOOL_NAMES: tuple[str, ...] = tuple(tool.name for tool in TOOLS)
TOOLS_BY_NAME: dict[str, ToolSpec] = {tool.name: tool for tool in TOOLS}

_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                       "boolean": (bool,), "array": (list,), "object": (dict,)}


def _check(schema: dict[str, Any], value: Any, where: str) -> str | None:
    """The first way `value` breaks `schema` (the subset of JSON Schema our tools use), or None."""
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))
        if not ok:
            return f"{where} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, got {type(value).__name__} {value!r:.60}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} must be one of {schema['enum']}, got {value!r:.60}"
    if "minimum" in schema and value < schema["minimum"]:
        return f"{where} must be at least {schema['minimum']}, got {value}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"{where} must be at most {schema['maximum']}, got {value}"
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            return f"{where} needs at least {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{where} takes at most {schema['maxItems']} items, got {len(value)}"
        for index, item in enumerate(value):
            problem = _check(schema.get("items", {}), item, f"{where}[{index}]")
            if problem:
                return problem
    if kind == "object":
        properties = schema.get("properties", {})
        missing = [name for name in schema.get("required", []) if name not in value]
        if missing:
            return f"missing required argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        if schema.get("additionalProperties") is False:
            unknown = sorted(set(value) - set(properties))
            if unknown:
                return f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; " \
                       f"this tool takes {', '.join(properties) or 'no arguments'}"
        for name, item in value.items():
            if name in properties:
                problem = _check(properties[name], item, name)
                if problem:
                    return problem
    return None


def validate_arguments(tool: str, arguments: Any) -> str | None:
    """None if the call fits the tool's schema, else one line saying what to fix."""
    spec = TOOLS_BY_NAME.get(tool)
    if spec is None:
        return f"unknown tool {tool!r}; tools are {', '.join(TOOL_NAMES)}"
    if not isinstance(arguments, dict):
        return f"the arguments for {tool} must be a JSON object, got {type(arguments).__name__}"
    return _check(spec.parameters, arguments, "arguments")
