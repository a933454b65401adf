"""PostgreSQL restarted while events flow, for real: a throwaway cluster (never the
shared server) is stopped and started twice, once cleanly and once as a crash, while
another process changes stock and the worker delivers. Every event committed arrives,
signed, each product's in sequence order."""

import subprocess
import sys
import time
from collections import defaultdict

import psycopg
import pytest

from core.throwaway_postgres import Cluster, create_on_a_free_port

from .conftest import requires_postgres
from .webhook_support import ROOT, Receiver, Worker, wait_until, worker_env

pytestmark = requires_postgres


@pytest.fixture
def cluster():
    cluster = create_on_a_free_port(range(5440, 5480))
    try:
        run(cluster, "manage.py", "migrate", "--noinput", "-v0")
        yield cluster
    finally:
        cluster.remove()


def run(cluster: Cluster, *command: str, timeout: float = 120) -> str:
    return subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=worker_env(DATABASE_URL=cluster.url),
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    ).stdout.strip()


def committed_events(cluster: Cluster) -> dict[str, tuple[int, int]]:
    """webhook-id -> (product, sequence) of every event in the cluster."""
    with psycopg.connect(cluster.url) as db:
        rows = db.execute("SELECT uid, product_id, sequence FROM events_event").fetchall()
    return {f"msg_{uid.hex}": (product, sequence) for uid, product, sequence in rows}


def test_postgresql_restarted_while_events_flow_loses_nothing(cluster, tmp_path, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = Receiver()
    try:
        secret = run(cluster, "-m", "events.tests.restart_driver", "endpoint", receiver.url)
        receiver.secrets = [secret]
        worker = Worker(tmp_path / "worker.log", DATABASE_URL=cluster.url).start()
        try:
            driver = subprocess.Popen(
                [sys.executable, "-m", "events.tests.restart_driver", "changes", "4", "300"],
                cwd=ROOT,
                env=worker_env(DATABASE_URL=cluster.url),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert driver.stdout.readline().strip() == "ready", driver.stderr.read()
            for mode in ("fast", "immediate"):  # a clean restart, then a crash
                time.sleep(1.5)
                cluster.stop(mode)
                time.sleep(1)
                cluster.start()
            out, err = driver.communicate(timeout=180)
            assert driver.returncode == 0, err[-3000:]
            events = committed_events(cluster)
            wait_until(
                lambda: {r.id for r in receiver.delivered()} >= set(events),
                timeout=120,
                explain=lambda: (
                    f"{len(set(events) - {r.id for r in receiver.delivered()})} "
                    f"of {len(events)} events not delivered; worker: {worker.output()[-3000:]}"
                ),
            )
        finally:
            worker.stop()
        output = worker.output()
    finally:
        receiver.close()

    assert int(out.strip()) > 0  # the changes did meet the database down
    assert len(events) >= 4 * 2 + 300  # created and initial stock, then every change
    assert all(r.verified for r in receiver.all())
    first_arrivals = defaultdict(list)
    for request in receiver.delivered():
        product, sequence = events[request.id]
        if sequence not in first_arrivals[product]:
            first_arrivals[product].append(sequence)
    for product, sequences in first_arrivals.items():
        assert sequences == sorted(sequences), (product, sequences)
    assert "restarting" in output  # the worker lost the database, and started again
    assert output.count("Webhook worker started") >= 2
