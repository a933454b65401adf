"""Deliveries per second of webhook workers to a local receiver (`make bench-webhooks`).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/inventory_whbench \
      .venv/bin/python bench/webhook_throughput.py [--products 500] [--changes 20] \
      [--workers 1] [--port 8360]

Empties the database's events and deliveries (use a throwaway database), makes
--products products and --changes increments of each, interleaved across products as
stock moves in a warehouse (their events: created, initial stock, changes), subscribes
a keep-alive receiver on 127.0.0.1:--port that verifies every signature, starts
--workers `manage.py run_worker` processes and times until every delivery has arrived.
Prints deliveries/s, from the workers' start and from the first arrival to the last.
"""

import argparse
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_project.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ["WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--port", type=int, default=8360)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from standardwebhooks.webhooks import Webhook

    from events import services as events
    from events.models import Delivery, Event, WebhookEndpoint
    from products import services
    from products.models import Product, StockMovement

    call_command("migrate", verbosity=0)
    Delivery.objects.all().delete()
    WebhookEndpoint.objects.all().delete()
    Event.objects.all().delete()
    StockMovement.objects.all().delete()
    Product.objects.all().delete()

    received, bad, arrivals = [], [], []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                verifier.verify(body, dict(self.headers))
                received.append(self.headers["webhook-id"])
                arrivals.append(time.monotonic())
            except Exception:
                bad.append(body)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = events.create_endpoint(url=f"http://127.0.0.1:{args.port}/")
    verifier = Webhook(endpoint.secret)

    # Changes interleaved across products, as stock moves in a warehouse.
    products = [
        services.create_product(sku=f"WH-{n}", name=f"Webhook bench {n}")
        for n in range(args.products)
    ]
    for _ in range(args.changes):
        for product in products:
            services.increment_stock(product_id=product.pk, quantity=1)
    total = Event.objects.count()
    print(f"{total} events to deliver ({args.products} products), {args.workers} worker(s)")

    started, machine = time.monotonic(), machine_cpu_seconds()
    workers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "run_worker"],
            cwd=ROOT,
            env={**os.environ, "LOG_LEVEL": "WARNING"},
        )
        for _ in range(args.workers)
    ]
    try:
        while len(set(received)) < total and time.monotonic() - started < 600:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        cpu = sum(cpu_seconds(worker.pid) for worker in workers)
        machine = machine_cpu_seconds() - machine
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        server.shutdown()
    steady = (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-9) if arrivals else 0
    print(
        f"delivered {len(set(received))}/{total} in {elapsed:.1f} s (worker start included): "
        f"{len(set(received)) / elapsed:.0f} deliveries/s; from the first arrival to the "
        f"last: {steady:.0f} deliveries/s; {len(received)} requests, {len(bad)} bad signatures; "
        f"CPU per delivery (start included): worker {1000 * cpu / max(len(received), 1):.2f} ms, "
        f"whole machine {1000 * machine / max(len(received), 1):.2f} ms"
    )


def machine_cpu_seconds() -> float:
    """CPU time the whole machine spent busy (workers, PostgreSQL, the receiver)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
