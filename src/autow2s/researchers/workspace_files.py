"""The file tools (read_file, write_file, edit_file, list_files) and the host's own files in a workspace.

A researcher's jobs write its workspace while the host reads and writes it for the tools, so every
access goes through autow2s.safefs: paths are relative to the workspace, no link is followed, only
regular files are read (a FIFO never blocks), reads are capped, and writes replace whatever entry
was there. /forum and /reference are read-only views the host keeps outside the workspace
(researchers/views.py); the file tools read them from there.
"""

from __future__ import annotations

import errno
import uuid
from pathlib import Path

from autow2s.researchers.output import ToolError, clip_lines
from autow2s.researchers.views import FORUM_MOUNT, MOUNTS, REFERENCE_PATH
from autow2s.safefs import SafeTree, UnsafePathError, split_relative

MAX_READ_BYTES = 20_000_000
KEEP_SPILLED = 50  # full outputs kept in .scratch for read_file, per stream
LISTED_FILES = 500
HIDDEN_FROM_LISTING = (".scratch", ".runs")
WORKSPACE_PREFIX = "/workspace"


class WorkspaceFiles:
    """Mixed into ToolBox: `workspace` is the researcher's workspace, `view_dir` the host folder of its views."""

    workspace: Path
    view_dir: Path | None

    @property
    def files(self) -> SafeTree:
        return SafeTree(self.workspace)

    @property
    def view_root(self) -> Path:
        assert self.view_dir is not None, "a ToolBox sets view_dir when it is made"
        return self.view_dir

    def _rel(self, relative: str | None) -> str:
        """A workspace path as the tools take it ('method/method.py', '/workspace/method', '.'), checked."""
        text = (relative or ".").strip()
        if text == WORKSPACE_PREFIX or text.startswith(WORKSPACE_PREFIX + "/"):
            text = text[len(WORKSPACE_PREFIX):].lstrip("/") or "."
        if text.startswith("/"):
            raise ToolError(f"path {relative!r} is outside your workspace; use paths relative to it "
                            f"(the read-only views are {', '.join(MOUNTS)})")
        try:
            return "/".join(split_relative(text)) or "."
        except UnsafePathError:
            raise ToolError(f"path {relative!r} is outside your workspace; use paths relative to it (no `..`)") from None

    def _view(self, path: str) -> tuple[SafeTree, str] | None:
        """(tree, relative path) when `path` names a read-only view (/forum/..., /reference/...)."""
        for mount, folder in MOUNTS.items():
            if path == mount or path.startswith(mount + "/"):
                rest = path[len(mount):].lstrip("/")
                return SafeTree(self.view_root), f"{folder}/{rest}" if rest else folder
        return None

    def _read_text(self, path: str) -> str:
        view = self._view(path.strip())
        tree, relative = view if view is not None else (self.files, self._rel(path))
        try:
            return tree.read_text(relative, MAX_READ_BYTES)
        except FileNotFoundError:
            hint = f" (the method reference is {REFERENCE_PATH})" if "reference" in path.lower() else ""
            raise ToolError(f"{path}: no such file in your workspace; list_files shows what is there{hint}") from None
        except IsADirectoryError:
            raise ToolError(f"{path} is a directory; list_files {path} shows what is in it") from None
        except UnsafePathError as exc:
            hint = (" look inside it with bash (head, tail, grep, sed -n 'A,Bp')" if "limit" in str(exc) else "")
            raise ToolError(f"{exc};{hint}" if hint else str(exc)) from None

    def _write_text(self, path: str, text: str, *, exclusive: bool = False) -> None:
        try:
            self.files.write_text(self._rel(path), text, exclusive=exclusive)
        except UnsafePathError as exc:
            raise ToolError(str(exc)) from None
        except IsADirectoryError:
            raise ToolError(f"{path} is a directory; give a file name") from None
        except OSError as exc:
            if exc.errno == errno.EISDIR:
                raise ToolError(f"{path} is a directory; give a file name") from None
            raise

    def _write_scratch(self, prefix: str, suffix: str, text: str) -> str:
        """A new file in .scratch (never an existing entry, never through a link); its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}{suffix}"
        self._write_text(f".scratch/{name}", text, exclusive=True)
        return name

    def _prune_scratch(self, prefix: str, keep: int = KEEP_SPILLED) -> None:
        """The workspace's disk limit is the researcher's, not ours to fill: keep the newest `keep` spills."""
        try:
            names = [name for name, kind in self.files.list_dir(".scratch") if kind == "file" and name.startswith(prefix)]
        except (OSError, UnsafePathError):
            return
        stamped = []
        for name in names:
            info = self.files.lstat(f".scratch/{name}")
            if info is not None:
                stamped.append((info.st_mtime_ns, name))
        for _, name in sorted(stamped)[:-keep] if len(stamped) > keep else []:
            self.files.unlink(f".scratch/{name}")

    def _spill(self, text: str, what: str, max_lines: int, max_chars: int) -> str:
        """Keep head and tail; the whole text goes to a workspace file that read_file can page through."""
        head_lines = max_lines * 2 // 5
        if clip_lines(text, what, max_lines=max_lines, head_lines=head_lines, max_chars=max_chars) == text:
            return text
        try:
            name = self._write_scratch(what, ".txt", text)
        except (ToolError, OSError):
            return clip_lines(text, what, max_lines=max_lines, head_lines=head_lines, max_chars=max_chars)
        self._prune_scratch(f"{what}_")
        return clip_lines(text, what, read_hint=f".scratch/{name}", max_lines=max_lines, head_lines=head_lines,
                          max_chars=max_chars)

    # -- the tools -------------------------------------------------------------------------
    def _tool_read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        text = self._read_text(path)
        if start_line is None and end_line is None:
            return clip_lines(text, path, read_hint=path)
        lines = text.splitlines()
        start, end = start_line or 1, min(end_line or len(lines), len(lines))
        if start > max(len(lines), 1) or end < start:
            raise ToolError(f"{path} has {len(lines)} lines; ask for a range inside 1..{len(lines)}")
        body = "\n".join(f"{n:>6}  {line}" for n, line in enumerate(lines[start - 1:end], start))
        return clip_lines(f"[{path}: lines {start}-{end} of {len(lines)}]\n{body}", path, read_hint=path)

    def _tool_write_file(self, path: str, content: str) -> str:
        self._write_text(path, content)
        return f"wrote {len(content)} characters to {path}"

    def _tool_edit_file(self, path: str, old_text: str, new_text: str) -> str:
        if self._view(path.strip()) is not None:
            raise ToolError(f"{path} is a read-only view; copy it into your workspace to change it")
        text = self._read_text(path)
        count = text.count(old_text)
        if count != 1:
            raise ToolError(f"{path}: old_text occurs {count} times; it must occur exactly once (read_file it and "
                            "copy a longer, unique passage)")
        self._write_text(path, text.replace(old_text, new_text))
        return f"edited {path}"

    def _tool_list_files(self, path: str = ".") -> str:
        view = self._view(path.strip())
        tree, relative = view if view is not None else (self.files, self._rel(path))
        if tree.kind(relative) != "directory":
            raise ToolError(f"{path}: not a directory in your workspace")
        found = tree.files(relative, skip_dir=lambda name: name in HIDDEN_FROM_LISTING, max_entries=LISTED_FILES + 1)
        prefix = "" if relative == "." else f"{relative}/"
        if view is not None:
            prefix = f"{path.strip().rstrip('/')}/"
        entries = sorted(prefix + entry.path for entry in found)
        lines = entries[:LISTED_FILES] or ["(no files in your workspace yet)" if relative == "." else "(empty)"]
        if len(entries) > LISTED_FILES:
            lines.append(f"… more than {LISTED_FILES} files; list a subfolder")
        if view is None and relative == ".":
            findings = len(SafeTree(self.view_root).list_dir(MOUNTS[FORUM_MOUNT]))
            lines += [f"{REFERENCE_PATH}  (read-only: the method contract)",
                      f"{FORUM_MOUNT}/  (read-only: {findings} forum findings, one markdown file each)"]
        return "\n".join(lines)
