# Developer entry points. `make` alone lists them.
#   make run    set everything up (venv, install, PostgreSQL, migrations, demo data)
#               and start the API + poller locally
#   make test   set up the same way and run ruff + the test suite
# Variables: VENV (default .venv), PYTHON (default python3), PYTEST_ARGS (extra pytest
# arguments, e.g. make test PYTEST_ARGS='-x -k claim').

VENV ?= .venv
PYTHON ?= python3
PYTEST_ARGS ?=
BENCH_ARGS ?=

# The shell lines below use only POSIX sh.
SHELL := /bin/sh

.DEFAULT_GOAL := help

.PHONY: help install browser test lint bandit audit run chaos bench docker-mirror clean

help:
	@echo 'make targets:'
	@echo '  install        create $(VENV) and pip install -e .[test] (redone when setup.cfg/pyproject.toml change)'
	@echo '  run            install, local PostgreSQL (scripts/dev-db), migrate, demo data; start API + poller'
	@echo '  test           install, Chromium if missing (apt-get, as root), local PostgreSQL, ruff check, pytest (the chaos test in its short form); PYTEST_ARGS=...'
	@echo '  lint           ruff check'
	@echo '  bandit         static security checks of app/ and poller/ (CI runs it after test)'
	@echo '  audit          pip-audit the installed dependencies (needs the internet; CI does not run it)'
	@echo '  chaos          the full chaos test: 300 jobs, pollers killed, PostgreSQL restarted (~2 min)'
	@echo '  bench          benchmarks next to their references; writes bench/results.md (~10 min; BENCH_ARGS=--quick)'
	@echo '  docker-mirror  repeat the Dockerfile install steps in a throwaway venv (no Docker needed)'
	@echo '  clean          stop the throwaway PostgreSQL; remove $(VENV), var/, caches'
	@echo 'local PostgreSQL: scripts/dev-db (stop the throwaway cluster with scripts/dev-db --stop)'

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

# `env=$$(scripts/dev-db ...)` first, not `eval "$$(scripts/dev-db ...)"`: eval of an
# empty string succeeds, which would hide a failed database set-up.
# A run that collects no test (pytest exit 5) fails: it means the suite went missing.
test: install browser
	env_lines="$$(scripts/dev-db exports)" && eval "$$env_lines" \
	&& $(VENV)/bin/ruff check . \
	&& $(VENV)/bin/pytest -m 'not chaos' $(PYTEST_ARGS)

# The console's browser tests drive Debian's Chromium (Playwright's own download cannot be
# reached from here): installed as root when missing, else one line saying how.
browser:
	@if [ -n "$$EXPORTS_CHROMIUM" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo 'installing Chromium for the browser tests (apt-get install chromium)'; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo 'make test needs Chromium for the console tests: sudo apt-get install chromium (or set EXPORTS_CHROMIUM=/path/to/chromium)' >&2; \
		exit 1; \
	fi

lint: install
	$(VENV)/bin/ruff check .

# Configuration and the one skipped check (with why) in pyproject.toml [tool.bandit].
bandit: install
	$(VENV)/bin/bandit -q -r app poller -c pyproject.toml

# Known vulnerabilities in what is installed, from PyPI's vulnerability data. Needs the
# internet; --strict fails when a package could not be looked up instead of passing quietly.
audit: install
	$(VENV)/bin/python -m pip install --quiet 'pip-audit>=2.7'
	$(VENV)/bin/pip-audit --strict --skip-editable

run: install
	VENV=$(VENV) scripts/run-local

chaos: install
	env_lines="$$(scripts/dev-db exports)" && eval "$$env_lines" \
	&& $(VENV)/bin/pytest -m chaos tests/chaos $(PYTEST_ARGS)

# Benchmarks measure and print; they never fail on a number. BENCH_ARGS=--quick for small sizes.
bench: install
	env_lines="$$(scripts/dev-db exports)" && eval "$$env_lines" \
	&& $(VENV)/bin/python bench/run.py $(BENCH_ARGS)

docker-mirror:
	PYTHON=$(PYTHON) scripts/docker-mirror

clean:
	-scripts/dev-db --stop
	rm -rf $(VENV) var .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
