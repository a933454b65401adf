"""The stock changes of test_database_restart, in their own process against the
throwaway cluster that test restarts (DATABASE_URL names it):

    python -m events.tests.restart_driver endpoint URL    # prints the new endpoint's secret
    python -m events.tests.restart_driver changes PRODUCTS CHANGES

`changes` makes PRODUCTS products and prints "ready", then makes CHANGES stock changes
across them, a few milliseconds apart; a change that meets the database down is made
again once it is back. Prints how many changes met an error.
"""

import contextlib
import os
import sys
import time

import django


def main(command: str, *args: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_project.settings")
    django.setup()
    from django.db import Error, connection

    from events import services as events
    from products import services

    if command == "endpoint":
        print(events.create_endpoint(url=args[0]).secret, flush=True)
        return
    count, changes = int(args[0]), int(args[1])
    products = [
        services.create_product(
            sku=f"RESTART-{n}", name=f"Restart {n}", stock_quantity=1000, low_stock_threshold=990
        ).pk
        for n in range(count)
    ]
    print("ready", flush=True)
    errors = 0
    for n in range(changes):
        change = services.decrement_stock if n % 3 else services.increment_stock
        while True:
            try:
                change(product_id=products[n % count], quantity=1 + n % 4)
                break
            except Error:  # the database is down or restarting: again, once it is back
                errors += 1
                with contextlib.suppress(Exception):
                    connection.close()
                time.sleep(0.1)
        time.sleep(0.01)
    print(errors, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
