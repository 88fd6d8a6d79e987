"""A researcher's HTTP client for the lab: every trusted-side tool goes through here, with its token."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import httpx

from autow2s.errors import AutoW2SError
from autow2s.safefs import SafeTree, UnsafePathError, split_relative

SNAPSHOT_MAX_BYTES = 2_000_000
SNAPSHOT_MAX_FILES = 500


class LabError(AutoW2SError):
    """The lab refused or failed a request; the message is the lab's own explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"lab answered {status}: {message}")
        self.status = status


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message = body.get("error") or body.get("detail") or response.text
    except ValueError:
        message = response.text or response.reason_phrase
    if response.status_code == 429 and response.headers.get("Retry-After"):
        message = f"{message} (retry after {response.headers['Retry-After']} s)"
    raise LabError(response.status_code, str(message)[:2000])


def pack_method_dir(tree: SafeTree, relative: str = ".", max_bytes: int = SNAPSHOT_MAX_BYTES) -> bytes:
    """A method directory (relative to a tree a job may write) as a gzipped tarball: regular files only,
    no caches, read through safefs (no link followed, no FIFO opened, each file capped)."""
    buffer = io.BytesIO()
    read = 0
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in sorted(tree.files(relative, skip_dir=lambda name: name == "__pycache__",
                                       max_entries=SNAPSHOT_MAX_FILES + 1), key=lambda e: e.path):
            if read > max_bytes * 20:
                break
            path = entry.path if relative == "." else f"{relative}/{entry.path}"
            data = tree.read_bytes(path, max_bytes)
            read += len(data)
            info = tarfile.TarInfo(entry.path)
            info.size, info.mode, info.mtime = len(data), 0o644, int(entry.info.st_mtime)
            tar.addfile(info, io.BytesIO(data))
            if len(tar.getmembers()) > SNAPSHOT_MAX_FILES:
                raise AutoW2SError(f"{relative}: more than {SNAPSHOT_MAX_FILES} files; a snapshot is a method "
                                   "directory, not a workspace")
    data = buffer.getvalue()
    if len(data) > max_bytes:
        raise AutoW2SError(f"{relative}: packed to {len(data)} bytes, over the {max_bytes}-byte snapshot limit")
    return data


def unpack_tarball(data: bytes, tree: SafeTree, relative: str) -> list[str]:
    """Extract a snapshot's regular files into tree/relative (emptied first), never through a link, and
    refusing any member name that is absolute or climbs out with `..`."""
    if tree.lstat(relative) is not None:
        tree.remove_tree(relative)
    tree.makedirs(relative)
    names = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            try:
                inside = "/".join(split_relative(member.name))
            except UnsafePathError:
                raise AutoW2SError(f"snapshot member {member.name!r} escapes the destination; refusing it") from None
            extracted = tar.extractfile(member)
            assert extracted is not None
            tree.write_bytes(f"{relative}/{inside}", extracted.read())
            names.append(member.name)
    return names


class LabClient:
    """Thin, typed-enough wrapper over the lab's REST API (see docs/lab.md)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LabError(0, f"cannot reach the lab at {self.base_url} ({type(exc).__name__}: {exc})") from None
        _raise_for(response)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A call whose answer must be one JSON object; anything else is the lab's bug, said as such."""
        body = self._call(method, path, **kwargs)
        if not isinstance(body, dict):
            raise LabError(0, f"{method} {path}: the lab answered {type(body).__name__}, not a JSON object")
        return body

    def _list(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        body = self._call(method, path, **kwargs)
        if not isinstance(body, list):
            raise LabError(0, f"{method} {path}: the lab answered {type(body).__name__}, not a JSON list")
        return body

    # -- scoring ---------------------------------------------------------------------------
    def evaluate(self, task: str, predictions: list[float], snapshot_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"task": task, "predictions": predictions}
        if snapshot_id:
            body["snapshot_id"] = snapshot_id
        return self._object("POST", "/api/v1/evaluate", json=body)

    # -- forum -----------------------------------------------------------------------------
    def share_finding(self, **finding: Any) -> dict[str, Any]:
        return self._object("POST", "/api/v1/findings", json={k: v for k, v in finding.items() if v is not None})

    def search_findings(self, q: str | None = None, sort: str | None = None, limit: int = 20,
                        **filters: Any) -> list[dict[str, Any]]:
        params = {"q": q, "sort": sort, "limit": limit, **filters}
        return self._list("GET", "/api/v1/findings", params={k: v for k, v in params.items() if v is not None})

    def read_finding(self, finding_id: int) -> dict[str, Any]:
        return self._object("GET", f"/api/v1/findings/{int(finding_id)}")

    def comment(self, finding_id: int, body: str) -> dict[str, Any]:
        return self._object("POST", f"/api/v1/findings/{int(finding_id)}/comments", json={"body": body})

    def vote(self, finding_id: int, value: int) -> dict[str, Any]:
        return self._object("POST", f"/api/v1/findings/{int(finding_id)}/vote", json={"value": value})

    # -- snapshots, verification, leaderboard ----------------------------------------------
    def save_snapshot(self, packed: bytes, name: str, message: str, parent_id: str | None = None) -> dict[str, Any]:
        """packed: the method directory as pack_method_dir made it."""
        params = {"name": name, "message": message, **({"parent_id": parent_id} if parent_id else {})}
        return self._object("POST", "/api/v1/snapshots", params=params, content=packed,
                            headers={"Content-Type": "application/gzip"})

    def download_snapshot(self, snapshot_id: str, tree: SafeTree, relative: str) -> list[str]:
        """The snapshot's files, extracted into tree/relative (see unpack_tarball)."""
        return unpack_tarball(self._call("GET", f"/api/v1/snapshots/{snapshot_id}/tarball"), tree, relative)

    def request_verification(self, snapshot_id: str, task: str) -> dict[str, Any]:
        return self._object("POST", "/api/v1/verify", json={"snapshot_id": snapshot_id, "task": task})

    def verification(self, verify_id: int) -> dict[str, Any]:
        return self._object("GET", f"/api/v1/verify/{int(verify_id)}")

    def my_status(self, task: str) -> dict[str, Any]:
        """This researcher's evaluations, verified runs, budgets and limits on a task (its own rows only)."""
        return self._object("GET", "/api/v1/me/status", params={"task": task})

    def leaderboard(self, task: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("task", task), ("limit", limit)) if v is not None}
        return self._list("GET", "/api/v1/leaderboard", params=params)

    # -- transfer (admin token only; lab/transfer.py) ----------------------------------------
    def request_transfer(self, snapshot_id: str, task: str) -> dict[str, Any]:
        return self._object("POST", "/api/v1/admin/transfer", json={"snapshot_id": snapshot_id, "task": task})

    def transfer_run(self, transfer_id: int) -> dict[str, Any]:
        return self._object("GET", f"/api/v1/admin/transfer/{int(transfer_id)}")

    def transfer_overview(self) -> dict[str, Any]:
        return self._object("GET", "/api/v1/admin/transfer")
