"""Tool output that fits a conversation: head and tail kept, and a marker that says how to read the rest.

The middle of a long output is what an agent can most afford to lose; the first lines (what ran,
the header of a file) and the last (the error, the result) are what it needs. The marker names
the cut lines and the read_file call that shows them.
"""

from __future__ import annotations

from autow2s.errors import AutoW2SError

MAX_LINES = 200
HEAD_LINES = 80
MAX_CHARS = 12_000
MAX_LINE_CHARS = 2_000


class ToolError(AutoW2SError):
    """A tool call the researcher can fix (bad path, missing file, unknown tool)."""


def _short(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return f"{line[:MAX_LINE_CHARS]} …[{len(line) - MAX_LINE_CHARS} more characters on this line]"


def clip_lines(text: str, what: str, read_hint: str | None = None, *, max_lines: int = MAX_LINES,
               head_lines: int = HEAD_LINES, max_chars: int = MAX_CHARS) -> str:
    """`text` unchanged if it is short, else its head and tail around one marker line.

    read_hint: a workspace path holding the whole text; the marker then gives the exact
    read_file call for the cut lines.
    """
    if len(text) <= max_chars and text.count("\n") < max_lines:
        return text
    lines = [_short(line) for line in text.splitlines()]
    tail_lines = max_lines - head_lines
    while True:
        head, tail = lines[:head_lines], lines[-tail_lines:] if len(lines) > head_lines + tail_lines else []
        if not tail:
            head = lines
        if sum(len(x) + 1 for x in head + tail) <= max_chars or head_lines + tail_lines <= 8:
            break
        head_lines, tail_lines = max(4, head_lines // 2), max(4, tail_lines // 2)
    cut = len(lines) - len(head) - len(tail)
    if cut <= 0:
        return "\n".join(head)[:max_chars]
    first, last = len(head) + 1, len(head) + cut
    how = (f"read_file path={read_hint} start_line={first} end_line={last}" if read_hint
           else "narrow the command (head, tail, grep, sed -n) to see them")
    marker = f"…[{cut} lines cut from {what} (lines {first}-{last} of {len(lines)}); to read them: {how}]…"
    return "\n".join([*head, marker, *tail])
