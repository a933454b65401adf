"""Decrements with Idempotency-Keys through a real server while PostgreSQL restarts.

    .venv/bin/python bench/db_restart.py [--clients 8] [--restarts 3] [--down 2]
                                         [--port 8821] [--pg-port 5441]

Not part of CI: it starts and stops a database server. It never touches the shared
one: it initdb's a throwaway cluster into a temporary directory (as the `postgres`
user when run as root) on --pg-port, and deletes it at the end.

gunicorn serves the API from that cluster with persistent connections
(CONN_MAX_AGE=60). Each client thread decrements one product by 1 with a fresh
Idempotency-Key, and retries a 503, an in-progress 409 or a broken HTTP connection
with the same key until it gets a definite answer. Meanwhile PostgreSQL is stopped
(alternately `-m fast` and `-m immediate`, i.e. a crash), kept down --down seconds
and started again, --restarts times; a probe polls /readyz throughout.

Prints what the clients saw (responses by status, the longest wait for an answer)
and the reconciliation: the stock must equal the start minus the keys that
succeeded, the ledger must hold exactly one movement per succeeded key, and
`verify_ledger` must pass. Exits 1 otherwise.
"""

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter

import psycopg2
from common import PYTHON, ROOT, api_token, wait_for_port

sys.path.insert(0, str(ROOT))
from core.throwaway_postgres import Cluster

START_STOCK = 1_000_000
MIN_KEYS_PER_CLIENT = 20
MAX_BACKOFF = 0.5  # seconds: a client waits min(Retry-After, this) before retrying


class Api:
    """A keep-alive HTTP client; a broken connection is reopened on the next call."""

    def __init__(self, port: int, token: str = "") -> None:
        self.port = port
        self.token = token
        self.connection: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body=None, headers=None):
        """(status, headers, parsed body); status 0 when the HTTP connection broke."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            all_headers["Authorization"] = f"Token {self.token}"
        try:
            self.connection.request(
                method, path, json.dumps(body) if body is not None else None, all_headers
            )
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = None
            return 0, {}, None
        return response.status, dict(response.getheaders()), json.loads(data) if data else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--down", type=float, default=2.0, help="seconds kept down")
    parser.add_argument("--port", type=int, default=8821, help="the API server's port")
    parser.add_argument("--pg-port", type=int, default=5441, help="the throwaway cluster's")
    args = parser.parse_args()

    cluster = Cluster(args.pg_port)
    print(f"Throwaway PostgreSQL cluster on port {args.pg_port} in {cluster.directory}")
    try:
        cluster.create()
        ok = exercise(args, cluster)
    finally:
        cluster.remove()
    sys.exit(0 if ok else 1)


def exercise(args, cluster: Cluster) -> bool:
    """Serve the API from the cluster, run the clients through the restarts, reconcile."""
    env = {
        **os.environ,
        "DATABASE_URL": cluster.url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "CONN_MAX_AGE": "60",
        "THROTTLE_USER": "1000000/minute",
    }
    manage = [PYTHON, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    token = api_token(env, "scanner", "admin")
    server_log = cluster.directory / "gunicorn.log"
    with server_log.open("w") as log:  # one line per 503: kept out of the table
        server = subprocess.Popen(
            [
                *(PYTHON, "-m", "gunicorn", "inventory_project.wsgi"),
                *("--workers", "2", "--threads", "4"),
                *("--bind", f"127.0.0.1:{args.port}", "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=env,
            stderr=log,
        )
        try:
            wait_for_port(args.port)
            product = create_product(Api(args.port, token))
            report = run(args, cluster, token, product)
        finally:
            server.terminate()
            server.wait(timeout=30)
    report["server_log"] = server_log.read_text()
    return reconcile(report, cluster, env, product)


def create_product(api: Api) -> int:
    body = {"sku": "HOT-1", "name": "Hot item", "price": "1.00", "stock_quantity": START_STOCK}
    status, _, created = api.call("POST", "/api/products/", body)
    if status != 201:
        raise SystemExit(f"could not create the product: {status} {created}")
    return created["id"]


def run(args, cluster: Cluster, token: str, product: int) -> dict:
    """The clients, the readiness probe and the restarts, together; what they saw."""
    restarts_done = threading.Event()
    lock = threading.Lock()
    statuses: Counter = Counter()  # every response, by status (0 = HTTP connection broke)
    answers: dict[str, tuple[int, bool]] = {}  # key -> (final status, replayed)
    longest_wait = [0.0]  # from a key's first attempt to its definite answer
    readiness: Counter = Counter()

    def client(number: int) -> None:
        api = Api(args.port, token)
        sent = 0
        while sent < MIN_KEYS_PER_CLIENT or not restarts_done.is_set():
            key = f"client-{number}-{sent}"
            first_try = time.monotonic()
            while True:
                status, headers, body = api.call(
                    "POST",
                    f"/api/products/{product}/decrement/",
                    {"quantity": 1, "reference": key},
                    {"Idempotency-Key": key},
                )
                with lock:
                    statuses[status] += 1
                in_progress = status == 409 and body["code"] == "idempotency_request_in_progress"
                if status not in (0, 503) and not in_progress:
                    break
                retry_after = float(headers.get("Retry-After", 0.1))
                time.sleep(random.uniform(0, min(retry_after, MAX_BACKOFF)))
            with lock:
                answers[key] = (status, headers.get("Idempotent-Replayed") == "true")
                longest_wait[0] = max(longest_wait[0], time.monotonic() - first_try)
            sent += 1

    def probe() -> None:
        api = Api(args.port)
        while not restarts_done.is_set():
            status, _, _ = api.call("GET", "/readyz")
            with lock:
                readiness[status] += 1
            time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    threads.append(threading.Thread(target=probe))
    for thread in threads:
        thread.start()
    outages = []
    for round_ in range(args.restarts):
        time.sleep(random.uniform(1.0, 2.0))
        mode = "fast" if round_ % 2 == 0 else "immediate"
        began = time.monotonic()
        cluster.stop(mode)
        time.sleep(args.down)
        cluster.start()
        outages.append((mode, time.monotonic() - began))
        print(f"  restart {round_ + 1}: stop -m {mode}, down {outages[-1][1]:.1f} s", flush=True)
    time.sleep(1.0)  # some traffic after the last restart, too
    restarts_done.set()
    for thread in threads:
        thread.join(timeout=300)
    hung = sum(thread.is_alive() for thread in threads)
    return {
        "statuses": statuses,
        "answers": answers,
        "longest_wait": longest_wait[0],
        "readiness": readiness,
        "outages": outages,
        "hung": hung,
    }


def reconcile(report: dict, cluster: Cluster, env: dict, product: int) -> bool:
    answers = report["answers"]
    succeeded = {key for key, (status, _) in answers.items() if status == 200}
    final = Counter(status for status, _ in answers.values())
    connection = psycopg2.connect(cluster.url)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT stock_quantity FROM products_product WHERE id = %s", [product])
        stock = cursor.fetchone()[0]
        cursor.execute(
            "SELECT reference, count(*) FROM products_stockmovement"
            " WHERE product_id = %s AND kind = 'decrement' GROUP BY reference",
            [product],
        )
        movements = dict(cursor.fetchall())
    connection.close()
    verify = subprocess.run(
        [PYTHON, "manage.py", "verify_ledger"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    statuses = report["statuses"]
    print()
    print("What the clients saw")
    print(f"  {'status':<34}{'responses':>10}")
    for status, count in sorted(statuses.items()):
        label = "connection broke (no response)" if status == 0 else str(status)
        print(f"  {label:<34}{count:>10}")
    print(f"  {'total':<34}{sum(statuses.values()):>10}")
    replayed = sum(replay for _, replay in answers.values())
    print(f"  keys: {len(answers)}, final answers {dict(final)}, {replayed} replayed")
    print(f"  longest wait for a definite answer: {report['longest_wait']:.1f} s")
    print(f"  /readyz during the run: {dict(sorted(report['readiness'].items()))}")
    print(f"  hung threads: {report['hung']}")
    log = report["server_log"]
    unavailable = log.count("Service Unavailable: ")
    server_errors = log.count("Internal Server Error: ")
    print(f"  server log: {unavailable} 503 line(s), {server_errors} 500 line(s)")

    checks = [
        ("no request hung", report["hung"] == 0),
        ("no 500 (or other unexpected status)", set(statuses) <= {0, 200, 409, 503}),
        ("no 500 in the server log", server_errors == 0),
        ("every key got a definite 200", set(final) == {200}),
        (
            f"stock {stock:,} = {START_STOCK:,} - {len(succeeded)} succeeded keys",
            stock == START_STOCK - len(succeeded),
        ),
        (
            "one ledger movement per succeeded key, none for any other",
            movements == dict.fromkeys(succeeded, 1),
        ),
        (f"verify_ledger: {(verify.stdout or verify.stderr).strip()}", verify.returncode == 0),
        ("clients saw the outages (503s)", statuses[503] > 0),
    ]
    print()
    print("Reconciliation")
    for label, passed in checks:
        print(f"  {'ok  ' if passed else 'FAIL'} {label}")
    return all(passed for _, passed in checks)


if __name__ == "__main__":
    main()
