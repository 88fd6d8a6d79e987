"""Tasks: the registry, the jsonl loader and the synthetic generators.

Nothing is imported here, so that light modules (suites.py, which `autow2s --help` reads for the
campaign's defaults) load without numpy; import from the submodules.
"""
