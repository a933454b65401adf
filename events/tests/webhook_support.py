"""A real receiver and a real worker for the webhook tests.

The receiver is an HTTP server on 127.0.0.1 (a port from 8340-8399) that verifies every
delivery's signature with standardwebhooks and answers as a test scripts it. The worker
is `manage.py run_worker` in a subprocess against the test database (transactional
tests commit, so it sees their data), with retries and timeouts shortened.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from django.db import connection
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(8340, 8400)

# The worker's settings in the tests: seconds, not hours.
WORKER_ENV = {
    "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "WEBHOOK_CONNECT_TIMEOUT": "0.5",
    "WEBHOOK_TOTAL_TIMEOUT": "1",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "WEBHOOK_RETRY_MAX_SECONDS": "1",
    "WEBHOOK_MAX_ATTEMPTS": "8",
    "WEBHOOK_WORKER_CONCURRENCY": "4",
    "WEBHOOK_WORKER_POLL_SECONDS": "0.2",
    "WEBHOOK_WORKER_HEARTBEAT_SECONDS": "0.5",
    "WEBHOOK_WORKER_STALLED_SECONDS": "2",
}


class Received:
    def __init__(self, headers: dict[str, str], body: bytes, verified: bool, answered: int):
        self.headers = headers
        self.body = body
        self.verified = verified
        self.answered = answered

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """Records every request; verifies its signature with each of `secrets` (any one
    must match); answers from `script` (a queue of (status, headers, hang_seconds)), then
    204. A request whose signature does not verify is answered 401 and counted."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.script: deque[tuple[int, dict, float]] = deque()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = receiver.verify(body, headers)
                with receiver.lock:
                    status, extra, hang = (
                        receiver.script.popleft() if receiver.script else (204, {}, 0)
                    )
                    if not verified:
                        status, extra, hang = 401, {}, 0
                    receiver.received.append(Received(headers, body, verified, status))
                if hang:
                    time.sleep(hang)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        for port in PORTS:
            try:
                self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
                break
            except OSError:
                continue
        else:
            raise RuntimeError("no free port in 8340-8399 for the test receiver")
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks?source=inventory"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return False

    def then(self, status: int, *, headers: dict | None = None, hang: float = 0) -> "Receiver":
        self.script.append((status, headers or {}, hang))
        return self

    def delivered(self) -> list[Received]:
        """Requests answered 2xx, in arrival order."""
        with self.lock:
            return [r for r in self.received if 200 <= r.answered < 300]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate, timeout: float = 30, interval: float = 0.05, explain=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting: {explain()}")


def database_url_of_tests() -> str:
    settings = connection.settings_dict
    return (
        f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )


def worker_env(**env: str) -> dict[str, str]:
    """The environment of the worker in the tests (and of other processes beside it):
    the test database unless `env` names another, retries and timeouts shortened."""
    return {
        **os.environ,
        "DATABASE_URL": database_url_of_tests(),
        "LOG_LEVEL": "INFO",
        **WORKER_ENV,
        **env,
    }


class Worker:
    """`manage.py run_worker` in a subprocess, against the test database."""

    def __init__(self, log: Path, **env: str) -> None:
        self.log = log
        self.env = worker_env(**env)
        self.process: subprocess.Popen | None = None

    def start(self) -> "Worker":
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "run_worker"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def started():
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited: {self.output()}")
            return "Webhook worker started" in self.log.read_text()[offset:]

        wait_until(started, timeout=30)
        return self

    def kill(self) -> None:
        """kill -9: no goodbye, its jobs left `doing`."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@contextmanager
def running_worker(tmp_path: Path, **env: str):
    worker = Worker(tmp_path / "worker.log", **env).start()
    try:
        yield worker
    finally:
        worker.stop()


def empty_job_queue() -> None:
    """Transactional tests flush Django's tables, not procrastinate's (unmanaged models):
    start each worker test with an empty queue."""
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE procrastinate_jobs, procrastinate_workers, procrastinate_periodic_defers "
            "RESTART IDENTITY CASCADE"
        )


def subscribe(receiver: Receiver, **fields):
    """An endpoint for the receiver, whose secret the receiver then verifies with."""
    from events import services

    endpoint = services.create_endpoint(url=receiver.url, **fields)
    receiver.secrets.append(endpoint.secret)
    return endpoint
