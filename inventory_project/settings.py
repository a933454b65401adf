"""Settings for the inventory API, read from the environment (12-factor).

Every variable is documented in `.env.example`. A `.env` file next to `manage.py`
is read if present; real environment variables win over it.
"""

import ipaddress
import logging
import re
from pathlib import Path

import environ
from corsheaders import defaults as corsheaders_defaults
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# A development-only key, used when DEBUG is on and SECRET_KEY is unset. With DEBUG
# off the server refuses to start on it (or on no key at all).
DEV_SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default="") or (DEV_SECRET_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY == DEV_SECRET_KEY):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a long random value when DEBUG is off (see .env.example)."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "inventory_project.apps.InventoryAdminConfig",  # Django's admin, with a dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "products",
    "events",
    "reservations",
]

MIDDLEWARE = [
    # X-Request-ID on every response, and on every log line written during the request.
    "core.logs.RequestIdMiddleware",
    # Times and counts every request by route and status; answers /metrics.
    "core.metrics.MetricsMiddleware",
    # A chunked request body is refused (411) before anything could read it as empty.
    "inventory_project.middleware.LengthRequiredMiddleware",
    # /healthz and /readyz for load balancers, answered before everything else (but the
    # two above, which add a request id and count them).
    "products.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, API docs) straight from STATIC_ROOT, before any other work.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's, with the storage made only when a request uses it (the admin does).
    "inventory_project.middleware.LazyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "inventory_project.urls"
WSGI_APPLICATION = "inventory_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The project's own look for DRF's browsable API (before the apps' templates).
        "DIRS": [BASE_DIR / "inventory_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL is the database of record: DATABASE_URL=postgres://user:pass@host:5432/db.
# Without it, an embedded SQLite file, so that `make run` works anywhere. SQLite opens
# every transaction with BEGIN IMMEDIATE so that stock changes stay serialised.
# An empty DATABASE_URL counts as unset.
DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# Behind PgBouncer in transaction pooling mode (docs/operations.md, Running several servers) set
# DATABASE_POOLING=transaction: each transaction may then run on another server session,
# so the connections carry no session state. No server-side cursors (a WITH HOLD cursor
# outlives its transaction); no `options` startup parameter (PgBouncer refuses it): the
# timeouts below are then PgBouncer's to set, on its database entry; no server-side
# prepared statements (Django's psycopg default, prepare_threshold=None, kept). Advisory
# locks are transaction-level (pg_advisory_xact_lock) either way.
DATABASE_POOLING = env.str("DATABASE_POOLING", default="session")
if DATABASE_POOLING not in ("session", "transaction"):
    raise ImproperlyConfigured("DATABASE_POOLING must be `session` or `transaction`.")


def postgresql_database(url: str, *, pooled: bool) -> dict:
    """DATABASES' entry for a PostgreSQL URL: timeouts, keepalives, and when `pooled`
    (transaction pooling) nothing that needs a session of its own."""
    database = env.db_url_config(url)
    # Django's backend with a faster timestamptz loader (core/postgresql/base.py).
    database["ENGINE"] = "core.postgresql"
    # Fail fast instead of hanging: a request waits at most DB_CONNECT_TIMEOUT for a
    # connection and DB_STATEMENT_TIMEOUT for a statement (lock waits included), then
    # answers 503. A transaction left idle (a stuck worker) is ended, and its row locks
    # freed, after DB_IDLE_IN_TRANSACTION_TIMEOUT. 0 turns a timeout off. Options given
    # in the URL's query string win.
    options = database.setdefault("OPTIONS", {})
    options.setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5))
    database["DISABLE_SERVER_SIDE_CURSORS"] = pooled
    if pooled:
        refused = {
            "options": "PgBouncer refuses startup options: set the timeouts on its database entry",
            "server_side_binding": "server-side binding prepares statements",
            "prepare_threshold": "prepared statements belong to one server session",
        }
        for name, why in refused.items():
            if str(options.get(name, "")).lower() not in ("", "none", "false"):
                raise ImproperlyConfigured(
                    f"DATABASE_POOLING=transaction: `{name}` in DATABASE_URL ({why})."
                )
    else:
        server_timeouts = {
            "statement_timeout": env.float("DB_STATEMENT_TIMEOUT", default=30),
            "idle_in_transaction_session_timeout": env.float(
                "DB_IDLE_IN_TRANSACTION_TIMEOUT", default=60
            ),
        }
        options["options"] = " ".join(
            [f"-c {name}={round(seconds * 1000)}" for name, seconds in server_timeouts.items()]
            + ([options["options"]] if options.get("options") else [])
        )
    # TCP keepalives notice a database host that vanished without closing the socket.
    options.setdefault("keepalives", 1)
    options.setdefault("keepalives_idle", 30)
    options.setdefault("keepalives_interval", 10)
    options.setdefault("keepalives_count", 3)
    return database


if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"] = postgresql_database(
        DATABASE_URL, pooled=DATABASE_POOLING == "transaction"
    )
# The webhook worker LISTENs for new jobs, which needs a session of its own: behind
# PgBouncer in transaction mode it connects to PostgreSQL directly, by DIRECT_DATABASE_URL
# (the same database; run_worker refuses to start without it under DATABASE_POOLING=
# transaction). Otherwise the worker uses DATABASE_URL like everything else.
DIRECT_DATABASE_URL = env.str("DIRECT_DATABASE_URL", default="")
DIRECT_DATABASE = (
    postgresql_database(DIRECT_DATABASE_URL, pooled=False) if DIRECT_DATABASE_URL else None
)
# Webhook deliveries queue in PostgreSQL (procrastinate, whose tables are PostgreSQL-only
# SQL): its Django app, and with it the worker, exist only on PostgreSQL. On SQLite the
# API works, and creating a webhook endpoint is refused (docs/webhooks.md).
ON_POSTGRESQL = DATABASES["default"]["ENGINE"] == "core.postgresql"
if ON_POSTGRESQL:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("events"), "procrastinate.contrib.django")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
# A persistent connection that died (database restarted, connection killed) is noticed
# at the start of the next request (one `SELECT 1`) and replaced, so the API recovers
# on its own.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The cache holds the throttling counters. Set CACHE_URL (e.g. redis://127.0.0.1:6379/1)
# whenever more than one server process runs, so that they all count together.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Production hardening, switched on by the variables `.env.example` documents.
# Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_PROXY_SSL_HEADER = env.tuple("SECURE_PROXY_SSL_HEADER", default=None)
if SECURE_PROXY_SSL_HEADER is not None and len(SECURE_PROXY_SSL_HEADER) != 2:
    raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must be `HEADER,value`.")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Cross-origin calls from browser apps: none, unless CORS_ALLOWED_ORIGINS lists the
# origins (e.g. https://scanner.example.com) whose pages may call the API.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/"
CORS_ALLOW_HEADERS = (
    *corsheaders_defaults.default_headers,
    "idempotency-key",
    "if-match",
    "x-request-id",
)
CORS_EXPOSE_HEADERS = ["ETag", "Retry-After", "Idempotent-Replayed", "X-Request-ID"]

# `manage.py collectstatic` (which `make serve` runs) gathers the admin's and the API
# docs' files into STATIC_ROOT; WhiteNoise serves them, compressed, with DEBUG off too.
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# How long an Idempotency-Key's stored response is replayed; `manage.py
# purge_idempotency_keys` deletes older ones.
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)

# Webhooks (docs/webhooks.md). Endpoint URLs must be https, unless WEBHOOK_ALLOW_HTTP; an
# address that is loopback, private, link-local or otherwise not public is refused, at
# save time and again at delivery, unless WEBHOOK_ALLOWED_HOSTS names the host (or the
# address): those may also be plain http.
WEBHOOK_ALLOWED_HOSTS = [
    host.strip().lower().strip("[]")
    for host in env.list("WEBHOOK_ALLOWED_HOSTS", default=[])
    if host.strip()
]
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=3)
WEBHOOK_TOTAL_TIMEOUT = env.float("WEBHOOK_TOTAL_TIMEOUT", default=10)
# Retries: attempt n (from 0) waits WEBHOOK_RETRY_BASE_SECONDS x 2^n, at most
# WEBHOOK_RETRY_MAX_SECONDS, +-20 % jitter; with the defaults 18 attempts span about a day.
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=18)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=10)
WEBHOOK_RETRY_MAX_SECONDS = env.float("WEBHOOK_RETRY_MAX_SECONDS", default=3 * 3600)
# An endpoint whose deliveries have failed without a success in between for this long is
# disabled, with the reason shown.
WEBHOOK_DISABLE_AFTER_SECONDS = env.float("WEBHOOK_DISABLE_AFTER_SECONDS", default=24 * 3600)
# Each endpoint's deliveries go out in this many lanes, a product always in the same one:
# one request at a time per lane, in feed order; a delivery waiting for its retry holds
# back the later ones of its lane. Change it only with no delivery pending.
WEBHOOK_LANES = env.int("WEBHOOK_LANES", default=16)
# The worker (manage.py run_worker): deliveries in flight at once, how often it looks for
# jobs that came due (new ones are announced by LISTEN/NOTIFY), its heartbeat, and after
# how long without one another worker takes over a dead worker's jobs.
WEBHOOK_WORKER_CONCURRENCY = env.int("WEBHOOK_WORKER_CONCURRENCY", default=8)
WEBHOOK_WORKER_POLL_SECONDS = env.float("WEBHOOK_WORKER_POLL_SECONDS", default=1)
WEBHOOK_WORKER_HEARTBEAT_SECONDS = env.float("WEBHOOK_WORKER_HEARTBEAT_SECONDS", default=10)
WEBHOOK_WORKER_STALLED_SECONDS = env.float("WEBHOOK_WORKER_STALLED_SECONDS", default=60)

# The most lines one POST /api/stock-adjustments/ may carry.
STOCK_ADJUSTMENT_MAX_LINES = env.int("STOCK_ADJUSTMENT_MAX_LINES", default=200)
THROTTLE_ANON = env.str("THROTTLE_ANON", default="60/minute")
THROTTLE_USER = env.str("THROTTLE_USER", default="3000/minute")
PAGE_SIZE = env.int("PAGE_SIZE", default=50)

# A bad value here would otherwise surface as a 500 on every request.
for name, valid in [
    ("STOCK_ADJUSTMENT_MAX_LINES", 1 <= STOCK_ADJUSTMENT_MAX_LINES <= 10_000),
    ("PAGE_SIZE", 1 <= PAGE_SIZE <= 500),
    ("WEBHOOK_CONNECT_TIMEOUT", 0 < WEBHOOK_CONNECT_TIMEOUT <= WEBHOOK_TOTAL_TIMEOUT),
    ("WEBHOOK_TOTAL_TIMEOUT", 0 < WEBHOOK_TOTAL_TIMEOUT <= 300),
    ("WEBHOOK_MAX_ATTEMPTS", 1 <= WEBHOOK_MAX_ATTEMPTS <= 100),
    ("WEBHOOK_RETRY_BASE_SECONDS", 0 < WEBHOOK_RETRY_BASE_SECONDS <= WEBHOOK_RETRY_MAX_SECONDS),
    ("WEBHOOK_DISABLE_AFTER_SECONDS", WEBHOOK_DISABLE_AFTER_SECONDS > 0),
    ("WEBHOOK_LANES", 1 <= WEBHOOK_LANES <= 1000),
    ("WEBHOOK_WORKER_CONCURRENCY", 1 <= WEBHOOK_WORKER_CONCURRENCY <= 100),
    (
        "WEBHOOK_WORKER_STALLED_SECONDS",
        WEBHOOK_WORKER_STALLED_SECONDS > WEBHOOK_WORKER_HEARTBEAT_SECONDS > 0,
    ),
    ("THROTTLE_ANON", re.fullmatch(r"[0-9]+/(s|m|h|d)[a-z]*", THROTTLE_ANON)),
    ("THROTTLE_USER", re.fullmatch(r"[0-9]+/(s|m|h|d)[a-z]*", THROTTLE_USER)),
]:
    if not valid:
        raise ImproperlyConfigured(f"{name} is out of range or malformed (see .env.example).")

REST_FRAMEWORK = {
    # Token first: an anonymous request gets 401 with `WWW-Authenticate: Token`. The
    # token's query also loads the user's permissions (products/authentication.py).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "products.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's anon and user throttles, counting in windows (core/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttling.AnonRateThrottle",
        "core.throttling.UserRateThrottle",
    ],
    # How many proxies stand in front of the server: the client address for throttling is
    # taken from X-Forwarded-For only that deep. 0 = ignore the header (it is spoofable).
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_RATES": {
        "anon": THROTTLE_ANON,
        "user": THROTTLE_USER,
    },
    "DEFAULT_SCHEMA_CLASS": "products.schema.InventoryAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.StrictPageNumberPagination",
    "DEFAULT_METADATA_CLASS": "products.metadata.ActionMetadata",
    "DEFAULT_PARSER_CLASSES": ["products.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.ContentNegotiation",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "core.errors.problem_exception_handler",
    "PAGE_SIZE": PAGE_SIZE,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Warehouse inventory API",
    "DESCRIPTION": (
        "Products and their stock. Stock changes only through validated operations "
        "(increment, decrement, counted set) that never let it go negative. Every "
        "error is an RFC 9457 problem document (`application/problem+json`)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name for the event types, wherever they appear (events, endpoints, filters).
    "ENUM_NAME_OVERRIDES": {"EventTypeEnum": "events.models.EventType"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "products.schema.document_problem_responses",
    ],
}

# /metrics (docs/operations.md "Metrics and logs"): served to these addresses or networks
# (comma-separated; empty = none), and to any client sending METRICS_TOKEN as a Bearer token.
METRICS_ALLOWED_IPS = tuple(env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"]))
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
try:
    [ipaddress.ip_network(address, strict=False) for address in METRICS_ALLOWED_IPS]
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {exc}") from None

# LOG_FORMAT=json: one JSON object per line (time, level, logger, message, request_id,
# exception); the default is one plain line per record.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be plain or json.")
if LOG_FORMAT == "json":
    logging.captureWarnings(True)  # Python's warnings as log lines too, not bare text

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logs.JsonFormatter"},
    },
    "filters": {"request_id": {"()": "core.logs.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own loggers would print a second time through the root logger.
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # The job queue logs every job at INFO (a relay job every second): its warnings
        # and errors only; events.webhooks logs each delivery attempt's outcome.
        "procrastinate": {"level": env.str("PROCRASTINATE_LOG_LEVEL", default="WARNING")},
        # A request for a host not in ALLOWED_HOSTS is answered 400 (and the access log
        # shows it); Django would also log it at ERROR with a traceback, so that any
        # client could fill the error log.
        "django.security.DisallowedHost": {"handlers": [], "propagate": False},
    },
}
