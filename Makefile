# `make run` serves the API for development; `make test` runs the whole suite.
# Both start from a fresh clone: they create .venv and install what they need.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# `make test` uses DATABASE_URL if set, else this local PostgreSQL if it answers,
# else SQLite (where the PostgreSQL-only tests skip, saying why).
LOCAL_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/inventory
PYTEST_ARGS ?=

.PHONY: run test fuzz lint format migrate clean bench-lists bench-db-restart

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

# A development .env on first use: DEBUG on and a fresh random SECRET_KEY, so that
# `.venv/bin/python manage.py ...` works in another terminal too. Edit it freely.
.env:
	@echo "Creating .env for development (DEBUG on, random SECRET_KEY); see .env.example."
	@sed -e 's/^DEBUG=false/DEBUG=true/' .env.example > .env
	@echo "SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" >> .env

run: $(VENV)/.runtime-installed .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_superuser
	exec $(BIN)/python manage.py runserver "$(HOST):$(PORT)"

migrate: $(VENV)/.runtime-installed .env
	$(BIN)/python manage.py migrate --noinput

test: $(VENV)/.dev-installed
	@if [ -z "$$DATABASE_URL" ] && $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; then \
		export DATABASE_URL="$(LOCAL_POSTGRES_URL)"; \
	fi; \
	echo "Testing against $${DATABASE_URL:-SQLite (set DATABASE_URL for PostgreSQL)}"; \
	$(BIN)/pytest $(PYTEST_ARGS)

# Schemathesis, every check and phase, against the app served by gunicorn on a fresh
# PostgreSQL database (FUZZ_DATABASE_URL, default inventory_fuzz on 127.0.0.1:5432;
# port FUZZ_PORT, default 8811). FUZZ_ARGS adds `st run` options. See fuzz/run.py.
FUZZ_ARGS ?=
fuzz: $(VENV)/.dev-installed
	$(BIN)/python fuzz/run.py $(FUZZ_ARGS)

# Latency of the read endpoints on 1,000,000 products (PostgreSQL on 127.0.0.1:5432).
bench-lists: $(VENV)/.runtime-installed
	$(BIN)/python bench/list_latency.py

# Keyed decrements through gunicorn while PostgreSQL restarts under them (not in CI):
# a throwaway cluster on port 5441, initdb'd as the postgres user. Exits 1 unless it
# all reconciles.
bench-db-restart: $(VENV)/.runtime-installed
	$(BIN)/python bench/db_restart.py

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
