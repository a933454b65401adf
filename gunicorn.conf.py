"""Gunicorn settings for `make serve`: the production way to run the API.

Every value comes from the environment (or `.env`, which real variables override),
with defaults sized from the machine's CPU count. docs/operations.md "Serving in production"
lists the variables.
"""

import os
import shutil
import tempfile
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
env = environ.Env()

# Production defaults for the Django settings, unless the environment (or .env) says
# otherwise: keep each thread's database connection open between requests.
os.environ.setdefault("CONN_MAX_AGE", "600")

CPUS = os.cpu_count() or 1

# Metrics (core/metrics.py): each worker process writes its values to files in
# PROMETHEUS_MULTIPROC_DIR and /metrics sums them, whichever worker answers. It must be
# set before a worker imports the app, and be empty at start: scripts/with_worker.sh
# makes a fresh one shared with the webhook worker (whose delivery counts it carries);
# gunicorn started on its own makes its own, removed at exit. One given in the
# environment is used as it is (empty it before starting).
# (This file runs again on SIGHUP: the directory made the first time is kept.)
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="inventory-metrics-")
    os.environ["GUNICORN_MADE_METRICS_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]
METRICS_DIR_IS_OURS = (
    os.environ.get("GUNICORN_MADE_METRICS_DIR") == os.environ["PROMETHEUS_MULTIPROC_DIR"]
)

wsgi_app = "inventory_project.wsgi:application"
bind = [f"{env.str('HOST', default='127.0.0.1')}:{env.int('PORT', default=8000)}"]

# Processes give CPU parallelism (the GIL); threads let a process keep serving while
# one of its requests waits on the database. Threads need a threaded worker: gthread,
# with each request read in full by the worker's main loop before a thread gets it, so
# that slow or stalled clients hold no thread; it also keeps client connections alive
# between requests. It reads REQUEST_READ_TIMEOUT (seconds a request may take to
# arrive, default 20) and REQUEST_BUFFER_BYTES: see inventory_project/gunicorn_worker.py.
workers = env.int("WEB_CONCURRENCY", default=CPUS * 2)
threads = env.int("GUNICORN_THREADS", default=4)
worker_class = "inventory_project.gunicorn_worker.BufferingThreadWorker"
# A worker silent for this long is killed and replaced. With gthread workers that is a
# worker whose main loop is stuck, not a slow request: what bounds a request is the
# database's own limits (DB_CONNECT_TIMEOUT, DB_STATEMENT_TIMEOUT), answered with 503.
timeout = env.int("GUNICORN_TIMEOUT", default=60)
# On SIGTERM, stop accepting connections and let running requests finish this long.
graceful_timeout = env.int("GUNICORN_GRACEFUL_TIMEOUT", default=30)
# Seconds an idle keep-alive connection stays open (behind a proxy: above its own).
keepalive = env.int("GUNICORN_KEEPALIVE", default=5)
# Restart a worker after this many requests (0 = never), jittered so that they don't
# all restart at once: a guard against slow leaks in any library.
max_requests = env.int("GUNICORN_MAX_REQUESTS", default=0)
max_requests_jitter = env.int("GUNICORN_MAX_REQUESTS_JITTER", default=max(max_requests // 10, 0))
backlog = env.int("GUNICORN_BACKLOG", default=2048)
# The longest request line gunicorn takes (its default, 4,094 bytes, is shorter than a
# list URL with every documented filter at its maximum length in 4-byte characters,
# percent-encoded; past it gunicorn answers an HTML 414 the API never sees).
limit_request_line = 8190

# Access log on stdout, error log on stderr ("-"); a path writes to that file instead,
# and ACCESS_LOG=off turns the access log off. Each access line ends with the time the
# request took, in microseconds.
_access_log = env.str("ACCESS_LOG", default="-")
accesslog = None if _access_log.lower() in {"off", "none", "false", "0", ""} else _access_log
errorlog = env.str("ERROR_LOG", default="-")
loglevel = env.str("GUNICORN_LOG_LEVEL", default="info")
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'
# Gunicorn's logger, building each access line from only the atoms the format names.
logger_class = "core.logs.GunicornLogger"

# LOG_FORMAT=json: gunicorn's own lines as JSON too (core/logs.py), each access line
# with its request id, method, path, status and duration as fields.
if env.str("LOG_FORMAT", default="plain") == "json":

    def _json_handler(output: str, stream: str) -> dict:
        handler = {"formatter": "json", "filters": ["request_id"]}
        if output == "-":
            return {**handler, "class": "logging.StreamHandler", "stream": stream}
        return {**handler, "class": "logging.FileHandler", "filename": output}

    logconfig_dict = {
        "formatters": {"json": {"()": "core.logs.JsonFormatter"}},
        "filters": {
            "request_id": {"()": "core.logs.RequestIdFilter"},
            "access": {"()": "core.logs.GunicornAccessFilter"},
        },
        "handlers": {
            "json_error": _json_handler(errorlog, "ext://sys.stderr"),
            "json_access": {
                **_json_handler(accesslog or "-", "ext://sys.stdout"),
                "filters": ["access"],
            },
        },
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {
                "level": loglevel.upper(),
                "handlers": ["json_error"],
                "propagate": False,
            },
            "gunicorn.access": {
                "level": "INFO",
                "handlers": ["json_access"] if accesslog else [],
                "propagate": False,
            },
        },
    }

# Proxy headers (X-Forwarded-*) are trusted only from these addresses.
forwarded_allow_ips = env.str("FORWARDED_ALLOW_IPS", default="127.0.0.1,::1")

# Gunicorn's control socket (gunicornc) is off unless given a path: by default it sits
# in the home directory, where two servers on one machine would share it.
_control_socket = env.str("GUNICORN_CONTROL_SOCKET", default="")
control_socket_disable = not _control_socket
if _control_socket:
    control_socket = _control_socket


def when_ready(server):
    """Say so when throttle counts are per process (docs/api.md "Throttling")."""
    if workers > 1 and not env.str("CACHE_URL", default=""):
        server.log.warning(
            "CACHE_URL is not set: each of the %d worker processes counts throttled "
            "requests on its own, so every rate is in effect %d times higher. Set "
            "CACHE_URL=redis://host:6379/1 to share the counts.",
            workers,
            workers,
        )


def child_exit(server, worker):
    """A worker is gone: its counters stay in the sums (prometheus_client keeps them)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if METRICS_DIR_IS_OURS:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
