"""`manage.py run_worker`: the webhook worker (procrastinate), restarted on database loss.

`make run` and `make serve` start one beside the web server; run more on other machines
with this command (each takes jobs with SELECT … SKIP LOCKED, woken by LISTEN/NOTIFY).
"""

import asyncio
import contextlib
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

logger = logging.getLogger("events.worker")

WORKER_CONN_MAX_AGE = 300  # seconds
RESTART_DELAYS = (1, 2, 5, 10)  # seconds before starting again after the database was lost


class Command(BaseCommand):
    help = (
        "Run a webhook worker: relays published events to the webhook endpoints, delivers "
        "and retries them, and runs the periodic jobs. Needs PostgreSQL. Stop it with "
        "SIGTERM or Ctrl-C (jobs in flight finish first)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency",
            type=int,
            default=settings.WEBHOOK_WORKER_CONCURRENCY,
            help="Jobs in flight at once (default WEBHOOK_WORKER_CONCURRENCY).",
        )

    def handle(self, *args, concurrency: int, **options):
        if not settings.ON_POSTGRESQL:
            self.stdout.write(
                "Webhook deliveries need PostgreSQL (DATABASE_URL): no worker started."
            )
            return
        if settings.DIRECT_DATABASE is not None:
            # LISTEN/NOTIFY needs a session of its own: past PgBouncer, straight to
            # PostgreSQL (docs/operations.md, Running several servers). No connection is open yet.
            connections.settings["default"].update(settings.DIRECT_DATABASE)
        elif settings.DATABASE_POOLING == "transaction":
            raise CommandError(
                "DATABASE_POOLING=transaction: the worker needs DIRECT_DATABASE_URL, a "
                "connection to PostgreSQL that bypasses PgBouncer (it LISTENs for new jobs)."
            )
        # Each of the worker's threads keeps its database connection between jobs (checked
        # before each job, replaced if it died) instead of connecting for every delivery.
        connections.settings["default"]["CONN_MAX_AGE"] = max(
            connections.settings["default"]["CONN_MAX_AGE"] or 0, WORKER_CONN_MAX_AGE
        )
        asyncio.run(self.supervise(concurrency))

    async def supervise(self, concurrency: int) -> None:
        """Run the worker until a signal; when it stops on an error (the database went
        away: its listener or heartbeat fails), start it again after a pause."""
        from procrastinate.contrib.django import app

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        failures = 0
        connector = app.connector.get_worker_connector()
        with app.replace_connector(connector):
            while not stop.is_set():
                try:
                    async with app.open_async():
                        await self.run_until(app, stop, concurrency)
                    failures = 0
                except Exception as exc:  # the database, most likely: start again
                    failures += 1
                    logger.warning("Worker stopped on an error (%s); restarting", exc)
                if not stop.is_set():
                    delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
        self.stdout.write("Webhook worker stopped.")

    async def run_until(self, app, stop: asyncio.Event, concurrency: int) -> None:
        worker = asyncio.create_task(
            app.run_worker_async(
                name="webhooks",
                concurrency=concurrency,
                install_signal_handlers=False,
                delete_jobs="successful",
                fetch_job_polling_interval=settings.WEBHOOK_WORKER_POLL_SECONDS,
                abort_job_polling_interval=settings.WEBHOOK_WORKER_POLL_SECONDS * 5,
                update_heartbeat_interval=settings.WEBHOOK_WORKER_HEARTBEAT_SECONDS,
                stalled_worker_timeout=settings.WEBHOOK_WORKER_STALLED_SECONDS,
                shutdown_graceful_timeout=settings.WEBHOOK_TOTAL_TIMEOUT + 5,
            )
        )
        stopping = asyncio.create_task(stop.wait())
        logger.info("Webhook worker started (concurrency %s)", concurrency)
        await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            return
        stopping.cancel()
        worker.result()  # raises what stopped it
        raise RuntimeError("the worker stopped (a side task failed, e.g. the database)")
