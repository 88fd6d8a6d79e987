# Two commands on a fresh machine: `make run` and `make test`. Each sets up what it needs itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# Compiled modules are cached in __pycache__ (gitignored). Where the environment sets
# PYTHONDONTWRITEBYTECODE, every lab, sandboxed job and test worker compiles autow2s (and pytest
# rewrites every test module) from source again. Small but free: test-fast 74.5 s against 76.3 s
# (medians of 3, same 2-core machine, caches cleared before each uncached run).
export PYTHONDONTWRITEBYTECODE :=

.PHONY: run test test-fast lint venv bench calibrate system-deps-run system-deps-test clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages: bubblewrap sandboxes researchers' code; chromium drives the dashboard tests.
define need_debs
	@missing=""; for pair in $(1); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "autow2s needs:$$missing (Debian/Ubuntu: sudo apt-get install$$missing)"; exit 2; fi; fi
endef

system-deps-run:
	$(call need_debs,bwrap:bubblewrap)

# postgresql puts no command on PATH: its pair names initdb by a glob, which `command -v` expands.
system-deps-test:
	$(call need_debs,bwrap:bubblewrap chromium:chromium /usr/lib/postgresql/*/bin/initdb:postgresql)

# The default campaign, with the final step verifying one candidate (the lower-bound choice) besides vanilla
# instead of three: on 2 cores 6 min 18 s cached instead of 11.9 min (README, Quick start).
run: $(STAMP) system-deps-run
	$(VENV)/bin/autow2s run --verify-top-k 1

# Three workers on two cores: the longest tests (campaigns, labs, verified runs) mostly wait on their
# subprocesses. Measured on a fresh clone: 17 min 51 s with -n 3, 19 min 29 s with -n 2.
test: $(STAMP) system-deps-test
	$(PY) -m pytest -q -n 3

# ruff (style and likely bugs), mypy (types) and import-linter (the layers of docs/architecture.md, no
# import cycles); all configured in pyproject.toml. CI runs it before the tests.
lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

# Day-to-day: everything except campaigns, the browser, the Ray cluster and verifying labs (tests/conftest.py).
# Three workers: measured 2 min 10 s against 2 min 22 s with two, in one run on a quiet 2-core machine;
# 1 min 13 s median of 3 on a 2-core AMD EPYC. `--dist loadgroup` (one worker per module-scoped lab)
# measured slower there (82 s against 73 s), so tests are handed out one by one.
test-fast: $(STAMP) system-deps-run
	$(PY) -m pytest -q -n 3 -m "not slow"

bench: $(STAMP) system-deps-run
	$(PY) benchmarks/experiment_throughput.py
	$(PY) benchmarks/sandbox_overhead.py --repeats 5
	$(PY) benchmarks/lab_server.py

calibrate: $(STAMP)
	$(PY) scripts/calibrate.py

clean:
	rm -rf $(VENV) .autow2s-cache
