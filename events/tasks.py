"""The worker's tasks (procrastinate, found by its Django autodiscovery): the relay that
publishes events and queues their deliveries, the deliveries, and housekeeping.

Only on PostgreSQL: procrastinate's Django app is installed there alone (settings.py).
"""

import io
import logging

from django.conf import settings
from django.core.management import call_command
from procrastinate import RetryDecision, RetryStrategy
from procrastinate.contrib.django import app

from . import services, webhooks

logger = logging.getLogger(__name__)


class DeliveryRetry(RetryStrategy):
    """A failed attempt comes back when `webhooks.attempt` says (backoff with jitter,
    Retry-After honoured). Any other error (the database unreachable mid-task, say) is
    retried with the same backoff: the delivery is still pending."""

    def get_retry_decision(self, *, exception, job):
        if isinstance(exception, webhooks.RetryLater):
            return RetryDecision(retry_in={"seconds": exception.delay})
        return RetryDecision(retry_in={"seconds": webhooks.backoff(min(job.attempts, 8))})


@app.task(
    name=webhooks.DELIVER_TASK,
    queue=webhooks.QUEUE,
    pass_context=True,
    retry=DeliveryRetry(),
)
def deliver(context, delivery_ids: list[int] | None = None, delivery_id: int | None = None):
    """Deliveries of one endpoint's lane, in order (queued by webhooks.queue_deliveries;
    `delivery_id` alone: a job queued before lanes, which can go once none is left).

    An error other than a delivery's own (the database away, a bug) is retried with the
    backoff, WEBHOOK_MAX_ATTEMPTS times; then the job's pending deliveries fail with it,
    so that its lane is not held back for ever."""
    ids = delivery_ids or [delivery_id]
    try:
        webhooks.deliver(ids)
    except webhooks.RetryLater:
        raise
    except Exception as exc:
        if context.job.attempts + 1 < settings.WEBHOOK_MAX_ATTEMPTS:
            raise
        logger.exception(
            "Giving up on deliveries %s after %s attempts", ids, context.job.attempts + 1
        )
        webhooks.give_up(ids, reason=f"Not sent: {type(exc).__name__}: {exc}")


@app.periodic(cron="* * * * * *", periodic_id="relay")  # every second (6th field: seconds)
@app.task(name="events.tasks.relay", queue="relay", queueing_lock="events-relay", lock="relay")
def relay(timestamp: int) -> None:
    """Publish what has committed since the last run, queueing its deliveries."""
    while services.publish() == services.PUBLISH_BATCH:
        pass


@app.periodic(cron="* * * * * */5", periodic_id="retry-stalled")  # every 5 s (seconds last)
@app.task(name="events.tasks.retry_stalled_jobs", queue="relay", queueing_lock="retry-stalled")
async def retry_stalled_jobs(timestamp: int) -> None:
    """Put back the jobs of a worker that died mid-job (no heartbeat for
    WEBHOOK_WORKER_STALLED_SECONDS): at least once, a delivery it was making is made
    again, with the same webhook-id."""
    stalled = await app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=settings.WEBHOOK_WORKER_STALLED_SECONDS
    )
    for job in stalled:
        logger.warning("Retrying job %s of a worker that stopped responding", job.call_string)
        await app.job_manager.retry_job(job)


@app.periodic(cron="17 * * * *", periodic_id="purge-idempotency-keys")  # hourly
@app.task(name="events.tasks.purge_idempotency_keys", queue="relay")
def purge_idempotency_keys(timestamp: int) -> None:
    """Delete Idempotency-Keys past IDEMPOTENCY_KEY_TTL_HOURS (replaces the cron job)."""
    output = io.StringIO()
    call_command("purge_idempotency_keys", stdout=output)
    logger.info(output.getvalue().strip())
