"""`autow2s report RUN_DIR`: a static HTML report with PNG plots that opens without a server."""

from autow2s.report.build import build_report

__all__ = ["build_report"]
