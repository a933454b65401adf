# `make run` serves the API for development, `make serve` the production way (gunicorn);
# `make test` runs the whole suite. All start from a fresh clone: they create .venv and
# install what they need.

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

.PHONY: run serve test lint format migrate clean bench bench-soak bench-lists

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

# Production: DEBUG off whatever .env says, gunicorn sized by gunicorn.conf.py, static
# files collected for WhiteNoise. Needs SECRET_KEY (environment or .env), and refuses
# to start without one rather than fail deeper down.
SERVE_PREFLIGHT := import os, environ; environ.Env.read_env(".env", overwrite=False); \
	key = os.environ.get("SECRET_KEY", ""); \
	raise SystemExit(0 if key and not key.startswith("django-insecure") else 1)

serve: export DEBUG = false
serve: $(VENV)/.runtime-installed
	@$(BIN)/python -c '$(SERVE_PREFLIGHT)' || { \
		echo "make serve: SECRET_KEY is not set. Set it in the environment or in .env, e.g."; \
		echo "  echo \"SECRET_KEY=\$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')\" >> .env"; \
		echo "(and DATABASE_URL for PostgreSQL; see .env.example and README, Serving in production)."; \
		exit 1; }
	@[ -n "$$DATABASE_URL" ] || grep -qs '^DATABASE_URL=' .env || \
		echo "make serve: warning: DATABASE_URL is not set, serving the SQLite file db.sqlite3."
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_superuser
	$(BIN)/python manage.py collectstatic --noinput -v0
	HOST="$(HOST)" PORT="$(PORT)" exec $(BIN)/gunicorn --config gunicorn.conf.py

migrate: $(VENV)/.runtime-installed .env
	$(BIN)/python manage.py migrate --noinput

test: $(VENV)/.dev-installed
	@if [ -z "$$DATABASE_URL" ] && $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; then \
		export DATABASE_URL="$(LOCAL_POSTGRES_URL)"; \
	fi; \
	echo "Testing against $${DATABASE_URL:-SQLite (set DATABASE_URL for PostgreSQL)}"; \
	$(BIN)/pytest $(PYTEST_ARGS)

# Latency of the read endpoints on 1,000,000 products (PostgreSQL on 127.0.0.1:5432).
bench-lists: $(VENV)/.runtime-installed
	$(BIN)/python bench/list_latency.py

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
