"""create_app(settings): the lab's FastAPI application, with its state started in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from autow2s.lab import admin, forum, runs, scoring, snapshots, status, transfer, web
from autow2s.lab.audit import AuditMiddleware
from autow2s.lab.auth import PathTokenMiddleware
from autow2s.lab.core import Lab
from autow2s.lab.errors import BodyLimitMiddleware, install_error_handlers
from autow2s.lab.runners import VerifyRunner
from autow2s.lab.settings import LabSettings, admin_token_from_env, settings_from_json

SETTINGS_ENV = "AUTOW2S_LAB_SETTINGS"  # how `serve --workers N` hands its settings to each worker
LOG_LEVEL_ENV = "AUTOW2S_LAB_LOG_LEVEL"

DESCRIPTION = """The autow2s lab: scoring on dev with budgets and an audit log, verified runs on holdout,
a forum, and method snapshots. Every call except /api/v1/health carries `Authorization: Bearer <token>`;
clients that cannot set headers may prefix any path with `/r/<token>`. See docs/lab.md."""


def create_app(settings: LabSettings, *, runner: VerifyRunner | None = None) -> FastAPI:
    lab = Lab(settings, runner=runner)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lab.start()
        try:
            yield
        finally:
            lab.stop()

    app = FastAPI(title="autow2s lab", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.lab = lab
    install_error_handlers(app)
    for module in (admin, scoring, runs, status, forum, snapshots, transfer):
        app.include_router(module.router)
    app.include_router(web.router)  # the read-only dashboard at /dashboard/ (docs/dashboard.md)
    # Added last = outermost: the path token is moved into the header before anything else looks.
    app.add_middleware(BodyLimitMiddleware, default_limit=settings.max_json_bytes,
                       limits={"/api/v1/snapshots": settings.max_snapshot_bytes})
    app.add_middleware(AuditMiddleware)
    app.add_middleware(PathTokenMiddleware)
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker of `serve --workers N` (uvicorn imports it in each worker process).

    The parent has already prepared the database (schema, baselines), so each worker only loads.
    """
    import os

    from autow2s.lab.auth import configure_logging

    admin_token = admin_token_from_env()
    configure_logging(os.environ.get(LOG_LEVEL_ENV, "info"), (admin_token,))
    return create_app(settings_from_json(os.environ[SETTINGS_ENV], admin_token))
