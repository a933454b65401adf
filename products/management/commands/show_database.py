"""`manage.py show_database`: which database this configuration uses (`make run` and
`make serve` print it at start-up)."""

from django.core.management.base import BaseCommand
from django.db import connection


class Command(BaseCommand):
    help = "Print which database DATABASE_URL (or its absence) selects."

    def handle(self, *args, **options):
        settings = connection.settings_dict
        if connection.vendor == "sqlite":
            where = f"SQLite file {settings['NAME']} (set DATABASE_URL for PostgreSQL)"
        else:
            host = settings["HOST"] or "the local socket"
            port = f":{settings['PORT']}" if settings["PORT"] else ""
            where = f"{connection.display_name} database {settings['NAME']!r} on {host}{port}"
        self.stdout.write(f"Database: {where}")
