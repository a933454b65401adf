from django.core.management.base import BaseCommand

from reservations import services


class Command(BaseCommand):
    help = (
        "Mark every reservation past its expires_at expired, and bring its product's "
        "reserved quantity up to date. Availability is right without it (reads leave "
        "lapsed holds out); the worker runs it every 10 seconds (reservations/tasks.py)."
    )

    def handle(self, *args, **options):
        ended = services.expire_lapsed()
        self.stdout.write(f"Expired {ended} reservation(s).")
