# `make run` serves the API for development, `make serve` the production way (gunicorn);
# `make test` runs the whole suite. All start from a fresh clone: they create .venv and
# install what they need.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# `make test` uses DATABASE_URL if set (in the environment, else in .env), else this
# local PostgreSQL if it answers, else SQLite (where the PostgreSQL-only tests skip).
LOCAL_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/inventory
PYTEST_ARGS ?=

.PHONY: run serve worker test test-pgbouncer fuzz lint format migrate clean bench bench-soak bench-tools bench-profile \
	bench-lists bench-db-restart bench-webhooks bench-webhooks-cost bench-cpu bench-throttle

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

# Migrations run without the statement timeout: building an index on a big table may
# take longer than a request ever should.

# A development .env on first use: DEBUG on and a fresh random SECRET_KEY, so that
# `.venv/bin/python manage.py ...` works in another terminal too. Edit it freely.
.env:
	@echo "Creating .env for development (DEBUG on, random SECRET_KEY); see .env.example."
	@sed -e 's/^DEBUG=false/DEBUG=true/' .env.example > .env
	@echo "SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" >> .env

run: $(VENV)/.runtime-installed .env
	@$(BIN)/python manage.py show_database
	DB_STATEMENT_TIMEOUT=0 $(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_superuser
	exec scripts/with_worker.sh $(BIN)/python $(BIN)/python manage.py runserver "$(HOST):$(PORT)"

# One webhook worker on its own (more of them, on other machines, share the queue).
worker: $(VENV)/.runtime-installed .env
	exec $(BIN)/python manage.py run_worker

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
		echo "(and DATABASE_URL for PostgreSQL; see .env.example and docs/operations.md, Serving in production)."; \
		exit 1; }
	@[ -n "$$DATABASE_URL" ] || grep -qs '^DATABASE_URL=' .env || \
		echo "make serve: warning: DATABASE_URL is not set, serving the SQLite file db.sqlite3."
	@$(BIN)/python manage.py show_database
	DB_STATEMENT_TIMEOUT=0 $(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_superuser
	$(BIN)/python manage.py collectstatic --noinput -v0
	HOST="$(HOST)" PORT="$(PORT)" exec scripts/with_worker.sh $(BIN)/python \
		$(BIN)/gunicorn --config gunicorn.conf.py

migrate: $(VENV)/.runtime-installed .env
	DB_STATEMENT_TIMEOUT=0 $(BIN)/python manage.py migrate --noinput

test: $(VENV)/.dev-installed
	@if [ -z "$$DATABASE_URL" ] && [ -f .env ]; then \
		export DATABASE_URL="$$(sed -n 's/^DATABASE_URL=//p' .env | tail -n 1)"; \
	fi; \
	if [ -z "$$DATABASE_URL" ] && $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null; then \
		export DATABASE_URL="$(LOCAL_POSTGRES_URL)"; \
	fi; \
	echo "Testing against $${DATABASE_URL:-SQLite (set DATABASE_URL for PostgreSQL)}"; \
	$(BIN)/pytest $(PYTEST_ARGS)

# The concurrency and idempotency tests again, through a PgBouncer of their own in
# transaction pooling mode (DATABASE_POOLING=transaction) in front of the PostgreSQL of
# DATABASE_URL (else LOCAL_POSTGRES_URL): scripts/through_pgbouncer.py. Needs Debian's
# pgbouncer (apt-get install pgbouncer); starts no system service.
PGBOUNCER_TESTS ?= products/tests/test_pooling.py products/tests/test_concurrency.py \
	products/tests/test_idempotency.py products/tests/test_if_match.py \
	events/tests/test_feed.py events/tests/test_recording.py
test-pgbouncer: $(VENV)/.dev-installed
	@if [ -z "$$DATABASE_URL" ] && [ -f .env ]; then \
		export DATABASE_URL="$$(sed -n 's/^DATABASE_URL=//p' .env | tail -n 1)"; \
	fi; \
	DATABASE_URL="$${DATABASE_URL:-$(LOCAL_POSTGRES_URL)}" \
		$(BIN)/python scripts/through_pgbouncer.py $(PGBOUNCER_TESTS) $(PYTEST_ARGS)

# Schemathesis, every check and phase, against the app served by gunicorn on a fresh
# PostgreSQL database (FUZZ_DATABASE_URL, default inventory_fuzz on 127.0.0.1:5432;
# port FUZZ_PORT, default 8811). FUZZ_ARGS adds `st run` options. See fuzz/run.py.
FUZZ_ARGS ?=
fuzz: $(VENV)/.dev-installed
	$(BIN)/python fuzz/run.py $(FUZZ_ARGS)

# The benchmark suite (bench/suite.py): `make serve`'s server against the floor (a bare
# WSGI app) and pgbench on PostgreSQL at 127.0.0.1:5432; prints a table, writes
# bench/results.png; then what webhooks cost and deliver (bench-webhooks-cost,
# bench-webhooks). BENCH_SECONDS / BENCH_CLIENTS shorten or widen it.
BENCH_SECONDS ?= 20
BENCH_CLIENTS ?= 32
BENCH_SOAK_SECONDS ?= 300

bench-tools:
	@command -v wrk >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }; \
		else echo "make bench needs wrk: sudo apt-get install wrk"; exit 1; fi; }
	@command -v pgbench >/dev/null || { echo "make bench needs pgbench (Debian: postgresql-client)"; exit 1; }

bench: $(VENV)/.dev-installed bench-tools
	$(BIN)/python bench/suite.py --seconds $(BENCH_SECONDS) --clients $(BENCH_CLIENTS)
	$(MAKE) --no-print-directory bench-webhooks-cost bench-webhooks

# The spread scenario for 5 minutes, watching the server's memory.
bench-soak: $(VENV)/.dev-installed bench-tools
	$(BIN)/python bench/suite.py --soak $(BENCH_SOAK_SECONDS) --clients $(BENCH_CLIENTS)

# Where ours spends its CPU under one scenario's load (py-spy): BENCH_PROFILE=read|hot|...
BENCH_PROFILE ?= spread
bench-profile: $(VENV)/.dev-installed bench-tools
	$(BIN)/python bench/suite.py --profile $(BENCH_PROFILE) --seconds $(BENCH_SECONDS) --clients $(BENCH_CLIENTS)

# Latency of the read endpoints on 1,000,000 products (PostgreSQL on 127.0.0.1:5432).
bench-lists: $(VENV)/.runtime-installed
	$(BIN)/python bench/list_latency.py

# Keyed decrements through gunicorn while PostgreSQL restarts under them (not in CI):
# a throwaway cluster on port 5441, initdb'd as the postgres user. Exits 1 unless it
# all reconciles.
bench-db-restart: $(VENV)/.runtime-installed
	$(BIN)/python bench/db_restart.py

# Instructions per request (valgrind's callgrind), ours and the floor, in-process, warm:
# the steady figure to judge a change by (bench/cpu.py; a throwaway database).
BENCH_CPU_REQUESTS ?= 100
bench-cpu: $(VENV)/.runtime-installed
	@command -v valgrind >/dev/null || { echo "make bench-cpu needs valgrind (Debian: apt-get install valgrind)"; exit 1; }
	$(BIN)/python bench/cpu.py --requests $(BENCH_CPU_REQUESTS)

# CPU per request of the throttle, DRF's list of timestamps against our count, at
# 3000/minute and 100000000/minute, in-process and with Redis (bench/throttle_cost.py;
# Redis at 127.0.0.1:6379/15, its own keys only). Under a minute, one core.
bench-throttle: $(VENV)/.runtime-installed
	$(BIN)/python bench/throttle_cost.py

# The spread scenario with a webhook worker beside the server, alternating: the worker
# stopped, no endpoint, one endpoint subscribed to every event (bench/suite.py --webhooks).
bench-webhooks-cost: $(VENV)/.dev-installed bench-tools
	$(BIN)/python bench/suite.py --webhooks --seconds $(BENCH_SECONDS) --clients $(BENCH_CLIENTS)

# Webhook deliveries per second to a local receiver, with one worker and with four, on
# a throwaway database (inventory_bench_webhooks on 127.0.0.1:5432, recreated).
BENCH_WEBHOOKS_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/inventory_bench_webhooks
bench-webhooks: $(VENV)/.runtime-installed
	dropdb -h 127.0.0.1 -U postgres --if-exists inventory_bench_webhooks
	createdb -h 127.0.0.1 -U postgres inventory_bench_webhooks
	for workers in 1 4; do DEBUG=false DATABASE_URL=$(BENCH_WEBHOOKS_DATABASE_URL) \
		$(BIN)/python bench/webhook_throughput.py --workers $$workers || exit 1; done

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
