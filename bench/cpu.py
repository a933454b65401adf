"""Instructions per request, counted by valgrind's callgrind (`make bench-cpu`).

    .venv/bin/python bench/cpu.py [--requests 100] [--kinds get,decrement,...]

Drives the WSGI apps in-process, one thread, warm, with no network: ours (Django, as
`make serve` runs it, DEBUG off) and the floor (bench/floor_app.py, the same SQL with no
framework), against a throwaway PostgreSQL database (inventory_bench_cpu). Each app runs
once under `valgrind --tool=callgrind`, instrumentation off until each kind's measured
requests, whose instructions are dumped on their own; and once without valgrind, for the
CPU time of the same requests. Instruction counts repeat within a few percent whatever
else the machine is doing; CPU time on shared cores does not, so a change is judged by
instructions. Prints one table: instructions and CPU µs per request, ours ÷ floor.

Its first rows are references, not endpoints: what Django's request cycle (with our
middleware), DRF's view and our authentication cost before a product is touched
(bench/framework_views.py). BENCH_MIDDLEWARE=<comma-separated classes> runs ours with
that middleware instead of the project's (empty: none at all).
"""

import argparse
import ctypes
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# BENCH_CPU_DATABASE: another name, so that two checkouts on one server can measure at once.
DATABASE = os.environ.get("BENCH_CPU_DATABASE", "inventory_bench_cpu")
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
WARMUP = 30
OURS_KINDS = [
    "django",
    "drf",
    "drf_auth",
    "get",
    "list",
    "below",
    "increment",
    "decrement",
    "decrement_key",
    "bulk10",
    "reserve",
    "fulfil",
]
# Also `token`, the token view: its cost is the password hash (PBKDF2, hundreds of
# thousands of SHA-256 rounds), which valgrind slows so far that it is not a default;
# and `metrics`, a scrape of /metrics (run with PROMETHEUS_MULTIPROC_DIR=<empty dir> to
# measure it as gunicorn serves it).
FLOOR_KINDS = ["get", "list", "decrement", "reserve", "fulfil"]
# The reference rows (bench/framework_views.py): Django's request cycle with our
# middleware, DRF's view, DRF's view with our authentication, permissions and throttles.
FRAMEWORK_KINDS = ["django", "drf", "drf_auth"]
PRODUCTS = 200

SHIM = r"""
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void cg_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--kinds", default=",".join(OURS_KINDS))
    parser.add_argument("--child", choices=["ours", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--shim", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    kinds = [kind for kind in args.kinds.split(",") if kind]
    with tempfile.TemporaryDirectory() as tmp:
        shim = Path(tmp) / "cg.so"
        subprocess.run(
            ["cc", "-shared", "-fPIC", "-O1", "-x", "c", "-", "-o", str(shim)],
            input=SHIM, text=True, check=True,
        )  # fmt: skip
        prepare()
        rows = {}
        for app, app_kinds in (("ours", kinds), ("floor", [k for k in kinds if k in FLOOR_KINDS])):
            if not app_kinds:
                continue
            instructions = under_callgrind(app, app_kinds, args.requests, shim, Path(tmp))
            cpu = cpu_time(app, app_kinds, args.requests, shim)
            for kind in app_kinds:
                rows.setdefault(kind, {})[app] = (instructions[kind], cpu[kind])
    report(rows, args.requests)


def env() -> dict:
    return {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + "x" * 50,
        "THROTTLE_USER": "1000000/second",
        "CONN_MAX_AGE": "600",
        "ALLOWED_HOSTS": "testserver",
        "DJANGO_SETTINGS_MODULE": "inventory_project.settings",
        "LOG_LEVEL": "WARNING",
    }


def prepare() -> None:
    """A fresh database with PRODUCTS products (through the services) and a token."""
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DATABASE])
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DATABASE], check=True)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env(), check=True)
    subprocess.run(
        [*manage, "seed_products", "--count", str(PRODUCTS)],
        cwd=ROOT, env=env(), check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    # Enough stock that no measured decrement is refused (the ledger is not checked here).
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DATABASE, "-qc",
         "UPDATE products_product SET stock_quantity = 1000000000, low_stock_threshold = 0"],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [*manage, "create_api_user", "cpu", "--role", "admin", "--password", "cpu-bench-pw-1"],
        cwd=ROOT, env=env(), check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def under_callgrind(app: str, kinds: list[str], n: int, shim: Path, tmp: Path) -> dict:
    out = tmp / f"callgrind.{app}"
    run = subprocess.run(
        [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=yes",
            f"--callgrind-out-file={out}.%p", "--dump-instr=no",
            sys.executable, __file__, "--child", app, "--kinds", ",".join(kinds),
            "--requests", str(n), "--shim", str(shim),
        ],
        cwd=ROOT, env=env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    if run.returncode:
        sys.exit(f"bench-cpu: the {app} app failed under valgrind:\n{run.stderr[-2000:]}")
    counts = {}
    for dump in tmp.glob(f"callgrind.{app}.*"):
        text = dump.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: Client Request: (\S+)", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if trigger and total and trigger[1] in kinds:
            counts[trigger[1]] = int(total[1]) / n
    missing = set(kinds) - set(counts)
    if missing:
        sys.exit(f"bench-cpu: no callgrind dump for {', '.join(sorted(missing))} ({app})")
    return counts


def cpu_time(app: str, kinds: list[str], n: int, shim: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", app, "--kinds", ",".join(kinds),
         "--requests", str(n), "--shim", str(shim)],
        cwd=ROOT, env=env(), check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


# The child: one app, in-process.


def child(args) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    shim = ctypes.CDLL(args.shim)
    if args.child == "ours":
        import django

        django.setup()
        from django.conf import settings
        from rest_framework.authtoken.models import Token

        if "BENCH_MIDDLEWARE" in os.environ:  # e.g. empty: Django's bare request cycle
            settings.MIDDLEWARE = [m for m in os.environ["BENCH_MIDDLEWARE"].split(",") if m]
        from framework_views import urlpatterns

        from inventory_project import urls
        from inventory_project.wsgi import application

        urls.urlpatterns += urlpatterns  # the reference rows' routes, in this process only
        token = Token.objects.get(user__username="cpu").key
    else:
        os.environ["DATABASE_URL"] = DATABASE_URL
        from floor_app import application

        token = ""
    cpu = {}
    for kind in args.kinds.split(","):
        count = WARMUP + args.requests
        held = reservations(args.child, count) if kind == "fulfil" else []
        requests = [request(kind, i, token, held) for i in range(count)]
        for environ in requests[:WARMUP]:
            call(application, environ)
        shim.cg_start()
        shim.cg_zero()
        started = time.process_time()
        for environ in requests[WARMUP:]:
            call(application, environ)
        cpu[kind] = (time.process_time() - started) * 1e6 / args.requests
        shim.cg_dump(kind.encode())
        shim.cg_stop()
    print(json.dumps(cpu))


def reservations(app: str, count: int) -> list[int]:
    """`count` active reservations of one unit, one per product in turn, for the
    fulfilments to ship: made by the app's own code, before anything is measured."""
    made = []
    for i in range(count):
        product = 1 + i % PRODUCTS
        if app == "ours":
            from reservations import services

            made.append(services.reserve(product_id=product, quantity=1, expires_in=3600).pk)
        else:
            from floor_app import connection, reserve

            made.append(reserve(connection(), product, 1, 3600)[1]["id"])
    return made


def request(kind: str, i: int, token: str, held: list[int] = ()) -> dict:
    """The WSGI environ of the i-th request of a kind (`held`: reservations to fulfil)."""
    product = 1 + i % PRODUCTS
    method, path, body, headers = "GET", f"/api/products/{product}/", None, {}
    if kind in FRAMEWORK_KINDS:
        from framework_views import PATHS

        path = f"/{PATHS[kind]}"
    elif kind == "list":
        path = "/api/products/"
    elif kind == "below":
        path = "/api/products/below_requirement/"
    elif kind in ("increment", "decrement", "decrement_key"):
        method, body = "POST", {"quantity": 1}
        path = f"/api/products/{product}/{'increment' if kind == 'increment' else 'decrement'}/"
        if kind == "decrement_key":
            headers["HTTP_IDEMPOTENCY_KEY"] = str(uuid.uuid4())
    elif kind == "reserve":
        method, path = "POST", f"/api/products/{product}/reservations/"
        body = {"quantity": 1, "expires_in": 3600, "reference": f"SO-{i}"}
    elif kind == "fulfil":
        method, path, body = "POST", f"/api/reservations/{held[i]}/fulfil/", {}
    elif kind == "bulk10":
        method, path = "POST", "/api/stock-adjustments/"
        lines = [{"product": 1 + (i * 10 + n) % PRODUCTS, "delta": 1} for n in range(10)]
        body = {"lines": lines}
    elif kind == "metrics":
        path, headers["REMOTE_ADDR"] = "/metrics", "127.0.0.1"
    elif kind == "token":
        method, path = "POST", "/api/auth/token/"
        body = {"username": "cpu", "password": "cpu-bench-pw-1"}
    payload = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "HTTP_ACCEPT": "application/json",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(payload),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **headers,
    }
    if kind != "token":
        environ["HTTP_AUTHORIZATION"] = f"Token {token}"
    if payload:
        environ.update(CONTENT_TYPE="application/json", CONTENT_LENGTH=str(len(payload)))
    return environ


def call(application, environ: dict) -> None:
    statuses = []
    body = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        for _ in body:
            pass
    finally:
        if hasattr(body, "close"):
            body.close()
    if not statuses or not statuses[0].startswith("2"):
        raise SystemExit(
            f"bench-cpu: {environ['REQUEST_METHOD']} {environ['PATH_INFO']}: {statuses}"
        )


def report(rows: dict, n: int) -> None:
    print(f"\nInstructions and CPU time per request, {n} warm requests each (in-process WSGI)")
    header = f"{'kind':14} {'ours instr':>12} {'floor instr':>12} {'÷floor':>7}"
    print(f"{header} {'ours µs':>9} {'floor µs':>9}")
    for kind, apps in rows.items():
        ours_i, ours_t = apps.get("ours", (0, 0))
        floor_i, floor_t = apps.get("floor", (0, 0))
        ratio = f"{ours_i / floor_i:.2f}" if floor_i else ""
        floor_cells = f"{floor_i:12,.0f}" if floor_i else f"{'':12}"
        floor_time = f"{floor_t:9.0f}" if floor_i else f"{'':9}"
        print(f"{kind:14} {ours_i:12,.0f} {floor_cells} {ratio:>7} {ours_t:9.0f} {floor_time}")


if __name__ == "__main__":
    main()
