"""The dashboard: read-only HTML pages served by the lab (see docs/dashboard.md)."""

from autow2s.lab.web.routes import router

__all__ = ["router"]
