#!/usr/bin/env bash
# Run a server command with a webhook worker beside it (make run, make serve):
#   scripts/with_worker.sh PYTHON SERVER-COMMAND...
# On PostgreSQL the worker (`manage.py run_worker`) starts first; on SQLite it prints
# why there is none and exits 0, and the server runs alone. Ctrl-C or SIGTERM stops
# both; if either exits, the other is stopped too, and the exit status is the first's.
set -u
python="$1"; shift
# Metrics: the server's processes and the worker write theirs to one fresh directory,
# summed at /metrics (gunicorn.conf.py, core/metrics.py); removed when both have stopped.
if [ -z "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  PROMETHEUS_MULTIPROC_DIR=$(mktemp -d -t inventory-metrics-XXXXXX)
  export PROMETHEUS_MULTIPROC_DIR
  trap 'rm -rf "$PROMETHEUS_MULTIPROC_DIR"' EXIT
fi
"$python" manage.py run_worker &
worker=$!
"$@" &
server=$!
stop() { pkill -TERM -P "$server" 2>/dev/null; kill -TERM "$server" "$worker" 2>/dev/null; }
trap 'stop' INT TERM
wait -n "$worker" "$server"
status=$?
if ! kill -0 "$worker" 2>/dev/null && [ "$status" = 0 ] && kill -0 "$server" 2>/dev/null; then
  wait "$server"   # no worker (SQLite): the server alone
  status=$?
fi
stop
wait
exit "$status"
