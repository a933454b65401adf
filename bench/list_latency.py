"""Latency of the read endpoints on a million products, through the real HTTP stack.

    .venv/bin/python bench/list_latency.py [--products 1000000] [--requests 200]
        [--without-statistics]

Seeds a dedicated PostgreSQL database, `inventory_bench` or the one BENCH_LISTS_DATABASE
names (idempotent: a rerun only tops it up), serves it with gunicorn (DEBUG off, 2
workers), and times sequential requests from one keep-alive client for each scenario.
Prints one table: median and p95 in ms. Target: every p95 under 50 ms.

`--without-statistics` deletes the planner's statistics of the products table (its
columns and its indexes' expressions) after the VACUUM, as on a database freshly
loaded before autovacuum has analyzed it (or with autovacuum off): the planner then
guesses that a search word matches few rows, whatever it matches. The next run
without the flag analyzes again.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import time
from urllib.parse import urlencode

from common import PYTHON, ROOT, api_token, wait_for_port

# Its own database on the local PostgreSQL; BENCH_LISTS_DATABASE names another (two
# checkouts measuring side by side, each with its own million products).
DATABASE = os.environ.get("BENCH_LISTS_DATABASE", "inventory_bench")
LATE_BY_NAME = "search matching 83,193 late, by name"
LATE_BY_NAME_REQUESTS = 20
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--without-statistics", action="store_true")
    args = parser.parse_args()

    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + "x" * 50,
        "THROTTLE_USER": "1000000/minute",
        "ALLOWED_HOSTS": "127.0.0.1",
        "ACCESS_LOG": "off",  # gunicorn.conf.py is read from the working directory
    }
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DATABASE], capture_output=True)
    manage = [PYTHON, "manage.py"]
    run([*manage, "migrate", "--noinput", "-v0"], env)
    run([*manage, "seed_products", "--count", str(args.products)], env)
    run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            DATABASE,
            "-qc",
            "VACUUM ANALYZE products_product",
        ],
        env,
    )
    if args.without_statistics:
        run([*PSQL, "-qc", FORGET_STATISTICS], env)
    token = api_token(env, "bench", "admin")

    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "inventory_project.wsgi",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for_port(args.port)
        print_table(measure(args.port, token, args.requests, args.products))
    finally:
        server.terminate()
        server.wait(timeout=30)


PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DATABASE]
# The statistics of the table's columns and of its indexes' expressions (the search
# text's trigram index among them).
FORGET_STATISTICS = """
DELETE FROM pg_statistic WHERE starelid = 'products_product'::regclass
   OR starelid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'products_product'::regclass)
"""


def run(command: list[str], env: dict) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def measure(port: int, token: str, requests: int, products: int) -> list[tuple]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}

    def get(path: str, params: dict | None = None) -> tuple[float, dict]:
        url = path + (("&" if "?" in path else "?") + urlencode(params) if params else "")
        started = time.perf_counter()
        connection.request("GET", url, headers=headers)
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise SystemExit(f"{url}: {response.status} {body[:200]!r}")
        return elapsed, json.loads(body)

    # A cursor about 90 % of the way through the catalogue.
    _, page = get("/api/products/", {"cursor": "", "page_size": 1})
    first_id = page["results"][0]["id"]
    deep_cursor = deep_cursor_url(first_id + int(products * 0.9))

    rng = random.Random(1)
    scenarios = {
        "list, first page": lambda: get("/api/products/"),
        "list, deep cursor page": lambda: get(deep_cursor),
        "search for a common word": lambda: get(
            "/api/products/", {"search": rng.choice(["jack", "bolt", "tape", "padlock", "carton"])}
        ),
        # Every seeded SKU starts with SEED-0: a term that matches all million products.
        "search matching every product": lambda: get("/api/products/", {"search": "SEED-0"}),
        "search matching all, by -updated_at": lambda: get(
            "/api/products/", {"search": "SEED-0", "ordering": "-updated_at"}
        ),
        "search matching all, cursor": lambda: get(
            "/api/products/", {"search": "SEED-0", "cursor": ""}
        ),
        "search matching all, deep cursor": lambda: get(deep_cursor, {"search": "SEED-0"}),
        # SEED-0001 matches the 100,000 products from SEED-000100000 on: none among the
        # first rows in id order.
        "search matching 100,000 late": lambda: get("/api/products/", {"search": "SEED-0001"}),
        "search matching 100,000 late, cursor": lambda: get(
            "/api/products/", {"search": "SEED-0001", "cursor": ""}
        ),
        # 83,193 seeded names start with "Waterproof", and sort after the other 916,807:
        # many matches, all far into an order no index of the word follows (over a
        # second a request with statistics, so measured LATE_BY_NAME_REQUESTS times).
        LATE_BY_NAME: lambda: get("/api/products/", {"search": "waterproof", "ordering": "name"}),
        "search for one full SKU": lambda: get(
            "/api/products/", {"search": f"SEED-{rng.randrange(1, products + 1):09d}"}
        ),
        "low stock, first page": lambda: get("/api/products/below_requirement/"),
        "filtered (stock 10-20, by price)": lambda: get(
            "/api/products/",
            {"stock_quantity__gte": 10, "stock_quantity__lte": 20, "ordering": "price"},
        ),
        "filtered (stock 10-20, by -updated_at)": lambda: get(
            "/api/products/",
            {"stock_quantity__gte": 10, "stock_quantity__lte": 20, "ordering": "-updated_at"},
        ),
        "GET by id": lambda: get(f"/api/products/{first_id + rng.randrange(products)}/"),
    }
    rows = []
    for name, call in scenarios.items():
        for _ in range(5):  # warm up
            call()
        n = min(requests, LATE_BY_NAME_REQUESTS) if name == LATE_BY_NAME else requests
        timings = sorted(call()[0] for _ in range(n))
        p95 = timings[int(len(timings) * 0.95) - 1]
        rows.append((name, statistics.median(timings), p95))
    return rows


def deep_cursor_url(after_id: int) -> str:
    """A cursor URL for the page after `after_id`, as `next` links write it (`a<id>`),
    rather than walking 18,000 pages to get there."""
    return f"/api/products/?{urlencode({'cursor': f'a{after_id}'})}"


def print_table(rows: list[tuple]) -> None:
    print()
    print(f"{'scenario':40} {'median ms':>10} {'p95 ms':>10}  {'p95 < 50 ms':>11}")
    for name, median, p95 in rows:
        print(f"{name:40} {median:10.1f} {p95:10.1f}  {'yes' if p95 < 50 else 'NO':>11}")


if __name__ == "__main__":
    main()
