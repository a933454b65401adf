"""Run tests through a PgBouncer of its own in transaction pooling mode (`make test-pgbouncer`).

    .venv/bin/python scripts/through_pgbouncer.py [pytest arguments: files, -k, ...]

Starts Debian's `pgbouncer` (never a system service: its own configuration in a
temporary directory, on a free loopback port) in front of the PostgreSQL of
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/inventory), with fewer server
connections (PGBOUNCER_POOL_SIZE, 8) than the concurrency tests have threads, so that
clients really share them. The tests connect to it with DATABASE_POOLING=transaction,
in a test database of their own (test_<name>_pgbouncer). Afterwards it prints what
PgBouncer counted for that database and fails if no transaction went through it; then
stops PgBouncer and drops the test database over the direct connection.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlunsplit

import environ

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DIRECT_URL = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/inventory"
POOL_SIZE = int(os.environ.get("PGBOUNCER_POOL_SIZE", "8"))
# What PostgreSQL would otherwise get as startup options (settings.py): under transaction
# pooling PgBouncer sets them on each server connection it opens.
CONNECT_QUERY = "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}"


def main(pytest_args: list[str]) -> int:
    direct = environ.Env.db_url_config(DIRECT_URL)
    if direct["ENGINE"] != "django.db.backends.postgresql":
        print("make test-pgbouncer needs DATABASE_URL to be PostgreSQL", file=sys.stderr)
        return 1
    user, host, port = direct["USER"] or "postgres", direct["HOST"], direct["PORT"] or 5432
    name = f"{direct['NAME']}_pgbouncer"
    pgbouncer = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(pgbouncer).exists():
        print("make test-pgbouncer needs pgbouncer (Debian: apt-get install pgbouncer)")
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="inventory-pgbouncer-"))
    listen = free_port()
    timeouts = CONNECT_QUERY.format(
        round(float(os.environ.get("DB_STATEMENT_TIMEOUT", "30")) * 1000),
        round(float(os.environ.get("DB_IDLE_IN_TRANSACTION_TIMEOUT", "60")) * 1000),
    )
    password = f" password={direct['PASSWORD']}" if direct["PASSWORD"] else ""
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={host} port={port}{password} connect_query='{timeouts}'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/userlist.txt
admin_users = {user}
pool_mode = transaction
default_pool_size = {POOL_SIZE}
max_client_conn = 500
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
"""
    )
    command = [pgbouncer, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        shutil.chown(workdir, "postgres")
        for path in workdir.iterdir():
            shutil.chown(path, "postgres")
        command[1:1] = ["-u", "postgres"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for(listen, server)
        print(f"PgBouncer {listen} (transaction pooling, {POOL_SIZE} server connections)")
        pooled_url = urlunsplit(("postgres", f"{user}@127.0.0.1:{listen}", f"/{name}", "", ""))
        env = {**os.environ, "DATABASE_URL": pooled_url, "DATABASE_POOLING": "transaction"}
        # --create-db makes the test database through PgBouncer; --reuse-db leaves it at
        # the end, when PgBouncer still holds connections to it (dropped below, directly).
        status = subprocess.call(
            [str(BIN / "pytest"), "--reuse-db", "--create-db", *pytest_args], cwd=ROOT, env=env
        )
        counted = show_stats(user, listen, f"test_{name}")
        if status == 0 and not counted:
            print("PgBouncer counted no transaction: the tests did not go through it")
            status = 1
        return status
    finally:
        server.send_signal(signal.SIGINT)  # SIGINT: close at once (SIGTERM waits for clients)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        subprocess.run(
            ["dropdb", "-h", host, "-p", str(port), "-U", user, "--if-exists", f"test_{name}"],
            env={**os.environ, "PGPASSWORD": direct["PASSWORD"] or ""},
            check=False,
        )
        shutil.rmtree(workdir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(port: int, server: subprocess.Popen) -> None:
    for _ in range(100):
        if server.poll() is not None:
            raise SystemExit(f"pgbouncer exited with status {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("pgbouncer did not start listening")


def show_stats(user: str, port: int, database: str) -> int:
    """Print PgBouncer's counters for the database; return its transaction count."""
    result = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            user,
            "-d",
            "pgbouncer",
            "-AF\t",
            "-c",
            "SHOW STATS",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    header, *rows = result.stdout.splitlines()
    columns = header.split("\t")
    for row in rows:
        stats = dict(zip(columns, row.split("\t"), strict=False))
        if stats.get("database") == database:
            print(
                f"PgBouncer counted for {database}: {stats['total_xact_count']} transactions, "
                f"{stats['total_query_count']} queries, clients waited "
                f"{int(stats['total_wait_time']) / 1e6:.2f} s in all for a server connection"
            )
            return int(stats["total_xact_count"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
