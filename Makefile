# PromptLooper. `make run` serves the app with an embedded worker; `make test` runs the suite.
HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python

# Django 6.1 needs Python 3.12+. On our machines `python3` is 3.11 and pyenv shims may refuse
# to run, so try each candidate for real and take the first that is new enough.
FIND_PYTHON := for c in python3.13 python3.12 python3 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	$$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { command -v $$c; break; }; done

CHROMIUM := /usr/bin/chromium

.PHONY: run test lint install chromium bench clean

$(VENV)/.installed: requirements.txt
	@python=$$($(FIND_PYTHON)); \
	if [ -z "$$python" ]; then \
		echo "PromptLooper needs Python 3.12 or newer (Django 6.1 requires it)."; \
		echo "Install python3.12 or python3.13, or put one on PATH, then run make again."; exit 1; \
	fi; \
	[ -x $(PY) ] && $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || $$python -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

install: $(VENV)/.installed

run: install
	DEBUG=$${DEBUG:-True} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-True} $(PY) manage.py demo
	DEBUG=$${DEBUG:-True} $(PY) manage.py runserver --noreload $(HOST):$(PORT)

# The browser tests drive Debian's Chromium through Playwright (which may not download its own).
chromium:
	@[ -x $(CHROMIUM) ] || { echo "Installing Debian's chromium for the browser tests"; \
		$$([ "$$(id -u)" = 0 ] || echo sudo) sh -c 'apt-get update -q && apt-get install -y -q chromium' >/dev/null; }

test: install chromium
	$(PY) -m pytest

# Lint, format and types: .ci/run runs this before the tests.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy

bench: install
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
