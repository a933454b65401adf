"""The worker's reservation housekeeping (procrastinate, found by its Django autodiscovery;
PostgreSQL only, like events/tasks.py)."""

import logging

from procrastinate.contrib.django import app

from . import services

logger = logging.getLogger(__name__)


@app.periodic(cron="* * * * * */10", periodic_id="expire-reservations")  # every 10 s
@app.task(
    name="reservations.tasks.expire_reservations",
    queue="relay",
    queueing_lock="expire-reservations",
    lock="expire-reservations",
)
def expire_reservations(timestamp: int) -> None:
    """Tidy lapsed holds: mark them expired, update their products' reserved counters."""
    ended = services.expire_lapsed()
    if ended:
        logger.info("Expired %s reservation(s)", ended)
