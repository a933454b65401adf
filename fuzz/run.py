"""Fuzz the live API with Schemathesis against its own OpenAPI schema (`make fuzz`).

    .venv/bin/python fuzz/run.py [extra `st run` options, e.g. --max-examples 5]

Recreates a dedicated PostgreSQL database (FUZZ_DATABASE_URL, default
inventory_fuzz on 127.0.0.1:5432), migrates it, makes an admin token, serves the app
with gunicorn on 127.0.0.1:FUZZ_PORT (default 8811, DEBUG off), runs `st run` with
every check and every phase (examples, coverage, fuzzing, stateful), then stops the
server. Exits with Schemathesis' status: non-zero on any failure. The configuration,
and the reason for anything that narrows a check, is in fuzz/schemathesis.toml.
"""

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import environ
import psycopg2
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATABASE_URL = os.environ.get(
    "FUZZ_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/inventory_fuzz"
)
PORT = int(os.environ.get("FUZZ_PORT", "8811"))
LOG = ROOT / "fuzz" / "server.log"

# Bounds that keep a run within about four minutes on two cores: up to 50 examples per
# operation and phase, repeated (fuzzing and stateful) until three minutes are spent.
ST_OPTIONS = [
    "--checks=all",
    "--phases=examples,coverage,fuzzing,stateful",
    "--max-examples=50",
    "--max-time=180",
    "--no-color",
]


def main() -> int:
    recreate_database(DATABASE_URL)
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        # Thousands of requests a minute from one user: throttling would answer 429s
        # instead of exercising the API (throttling has its own tests).
        "THROTTLE_USER": "1000000/minute",
        "THROTTLE_ANON": "1000000/minute",
        "LOG_LEVEL": "WARNING",
    }
    manage = [str(BIN / "python"), "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    token = subprocess.run(
        [*manage, "create_api_user", "fuzz", "--role", "admin"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

    with LOG.open("w") as log:
        server = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "inventory_project.wsgi",
                f"--bind=127.0.0.1:{PORT}",
                "--workers=2",
                "--timeout=30",
                # A request line over gunicorn's default 4,094 bytes gets gunicorn's own
                # HTML 414 before the app sees it. That limit belongs to whatever HTTP
                # server fronts the app, not to the API the schema describes, and the
                # fuzzer's percent-encoded 4-byte characters reach it within the
                # documented lengths; so here the app answers every URL itself.
                "--limit-request-line=0",
                # Its control socket has one default path for every gunicorn on the
                # machine; this throwaway server needs none, and must not take another's.
                "--no-control-socket",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(PORT, server)
        started = time.monotonic()
        status = subprocess.run(
            [
                str(BIN / "st"),
                "--config-file=fuzz/schemathesis.toml",
                "run",
                f"http://127.0.0.1:{PORT}/api/schema/",
                *ST_OPTIONS,
                *sys.argv[1:],
            ],
            cwd=ROOT,
            env={**env, "FUZZ_TOKEN": token},
        ).returncode
        print(f"Schemathesis finished in {time.monotonic() - started:.0f} s (exit {status}).")
    finally:
        server.terminate()
        server.wait(timeout=30)
    errors = [line for line in LOG.read_text().splitlines() if " ERROR " in line]
    if errors:
        print(f"The server logged {len(errors)} errors (see {LOG}):", *errors[:20], sep="\n")
        status = status or 1
    return status


def recreate_database(url: str) -> None:
    """An empty database for every run, so that a run never depends on the last one."""
    config = environ.Env.db_url_config(url)
    if "fuzz" not in config["NAME"]:  # it is dropped: never a database that holds data
        raise SystemExit(f"FUZZ_DATABASE_URL must name a throwaway *fuzz* database: {url}")
    connection = psycopg2.connect(
        dbname="postgres",
        user=config["USER"],
        password=config["PASSWORD"],
        host=config["HOST"],
        port=config["PORT"] or 5432,
    )
    connection.autocommit = True
    name = sql.Identifier(config["NAME"])
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(name))
    connection.close()


def wait_for_port(port: int, server: subprocess.Popen) -> None:
    for _ in range(100):
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}; see {LOG}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"gunicorn did not start on port {port}; see {LOG}")


if __name__ == "__main__":
    sys.exit(main())
