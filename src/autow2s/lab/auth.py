"""Bearer tokens: the admin's from the environment, researchers' minted by the admin.

Only sha256 digests of researcher tokens are stored. Clients that cannot set headers put the
token in the path (/r/{token}/...); the middleware moves it into the Authorization header, and
the log filter redacts both forms wherever they would be printed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from autow2s.lab.errors import APIError

TOKEN_PREFIX = "aw2s_"
_TOKEN_PATTERN = re.compile(r"aw2s_[A-Za-z0-9_\-]{8,}")
_PATH_TOKEN_PATTERN = re.compile(r"/r/[^/\s?\"']+")
_BEARER_PATTERN = re.compile(r"(?i)bearer\s+[^\s\"']+")
bearer_scheme = HTTPBearer(auto_error=False, description="a researcher token, or the admin token")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a researcher (id, name) or the admin (id None)."""

    researcher_id: int | None
    name: str

    @property
    def is_admin(self) -> bool:
        return self.researcher_id is None


class TokenBook:
    """token digest -> researcher: the researchers table, with the researchers already seen kept in memory.

    A token another lab worker created is found in the database on its first use, so a researcher
    registered through one worker can call any other at once.
    """

    def __init__(self, admin_token: str, find: Callable[[str], Principal | None]) -> None:
        self._admin_digest = hash_token(admin_token)
        self._find = find  # digest -> the researcher, from the database
        self._by_digest: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def add(self, researcher_id: int, name: str, token_digest: str) -> None:
        with self._lock:
            self._by_digest[token_digest] = Principal(researcher_id, name)

    def lookup(self, token: str) -> Principal | None:
        digest = hash_token(token)
        if hmac.compare_digest(digest, self._admin_digest):
            return Principal(None, "admin")
        with self._lock:
            known = self._by_digest.get(digest)
        if known is not None:
            return known
        found = self._find(digest)
        if found is not None and found.researcher_id is not None:
            self.add(found.researcher_id, found.name, digest)
        return found


def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or not credentials.credentials:
        raise APIError(401, "missing token: send 'Authorization: Bearer <token>' (or use /r/<token>/... in the path); "
                       "the lab admin creates researcher tokens", field="Authorization", outcome="unauthorized",
                       headers={"WWW-Authenticate": "Bearer"})
    principal: Principal | None = request.app.state.lab.tokens.lookup(credentials.credentials)
    if principal is None:
        raise APIError(401, "unknown token: check the token the lab admin gave you", field="Authorization",
                       outcome="unauthorized", headers={"WWW-Authenticate": "Bearer"})
    state = request.scope.setdefault("state", {})
    state["researcher_id"] = principal.researcher_id
    state["actor"] = "admin" if principal.is_admin else "researcher"
    return principal


def any_principal(request: Request,
                  credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)) -> Principal:
    return _principal(request, credentials)


def researcher(request: Request,
               credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)) -> Principal:
    principal = _principal(request, credentials)
    if principal.is_admin:
        raise APIError(403, "this endpoint acts as a researcher; use a researcher token (the admin creates them "
                       "with POST /api/v1/researchers)", field="Authorization", outcome="forbidden")
    return principal


def admin(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)) -> Principal:
    principal = _principal(request, credentials)
    if not principal.is_admin:
        raise APIError(403, "only the lab admin may do this", field="Authorization", outcome="forbidden")
    return principal


class PathTokenMiddleware:
    """/r/{token}/api/... -> /api/... with 'Authorization: Bearer {token}' (for header-less clients)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/r/"):
            _, _, rest = scope["path"][len("/r/"):].partition("/")
            token = scope["path"][len("/r/"):].split("/", 1)[0]
            new_path = "/" + rest
            headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
            headers.append((b"authorization", b"Bearer " + token.encode("latin-1", "replace")))
            state = dict(scope.get("state") or {})
            state["path_token"] = True
            scope = {**scope, "path": new_path, "raw_path": new_path.encode(), "headers": headers, "state": state}
        await self.app(scope, receive, send)


def redact(text: str, secrets_to_hide: tuple[str, ...] = ()) -> str:
    for secret in secrets_to_hide:
        if secret:
            text = text.replace(secret, "<redacted>")
    if "/r/" not in text and "aw2s_" not in text and "earer" not in text:  # the common case, cheaply
        return text
    text = _PATH_TOKEN_PATTERN.sub("/r/<redacted>", text)
    text = _BEARER_PATTERN.sub("Bearer <redacted>", text)
    return _TOKEN_PATTERN.sub("aw2s_<redacted>", text)


class RedactingFilter(logging.Filter):
    """Scrubs tokens from every record (message and args) before any handler formats it."""

    def __init__(self, secrets_to_hide: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets_to_hide = secrets_to_hide

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, self.secrets_to_hide)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a, self.secrets_to_hide) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v, self.secrets_to_hide) if isinstance(v, str) else v
                           for k, v in record.args.items()}
        return True


def redacted_path(scope: Mapping[str, Any]) -> str:
    path = scope.get("path", "")
    if scope.get("state", {}).get("path_token"):
        path = "/r/<redacted>" + path
    query = scope.get("query_string", b"").decode("latin-1")
    return redact(path + ("?" + query if query else ""))[:300]


def configure_logging(level: str, secrets_to_hide: tuple[str, ...]) -> None:
    """One stderr handler whose filter redacts tokens from every record, uvicorn's included."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets_to_hide))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
