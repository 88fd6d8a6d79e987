"""`python -m autow2s` runs the CLI."""

from autow2s.cli import app

app(prog_name="autow2s")
