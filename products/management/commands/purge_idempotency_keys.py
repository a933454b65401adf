from django.core.management.base import BaseCommand
from django.utils import timezone

from products import idempotency
from products.models import IdempotencyKey


class Command(BaseCommand):
    help = (
        "Delete Idempotency-Keys older than IDEMPOTENCY_KEY_TTL_HOURS (default 24). "
        "Run it periodically, e.g. hourly from cron."
    )

    def handle(self, *args, **options):
        cutoff = timezone.now() - idempotency.ttl()
        deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
        self.stdout.write(f"Deleted {deleted} expired idempotency key(s).")
