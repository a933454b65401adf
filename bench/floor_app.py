"""The floor: the least a Python WSGI service can do to serve the benchmark's URLs.

No framework, no authentication, no validation beyond the bare minimum: psycopg2,
one connection per thread, and the very SQL the API issues (a decrement is BEGIN,
SELECT ... FOR UPDATE, INSERT the movement, INSERT its event, UPDATE, COMMIT; a read is
one SELECT; the first list page is the capped count and the page). `bench/suite.py` serves it with
the same gunicorn settings as `make serve`:

    DATABASE_URL=postgres://... gunicorn -c gunicorn.conf.py bench.floor_app:application
"""

import json
import os
import re
import threading
import uuid
from datetime import UTC, datetime

import psycopg2

DATABASE_URL = os.environ["DATABASE_URL"]
PAGE_SIZE = int(os.environ.get("PAGE_SIZE", "50"))
COLUMNS = (
    "id",
    "sku",
    "sku_key",
    "name",
    "description",
    "price",
    "stock_quantity",
    "low_stock_threshold",
    "version",
    "event_sequence",
    "created_at",
    "updated_at",
)
SELECT = ", ".join(f'"products_product"."{column}"' for column in COLUMNS)
GET_ONE = f'SELECT {SELECT} FROM "products_product" WHERE "products_product"."id" = %s LIMIT 21'
LOCK = f"{GET_ONE} FOR UPDATE"
UPDATE = (
    'UPDATE "products_product" SET "stock_quantity" = %s, "version" = %s, "updated_at" = %s, '
    '"event_sequence" = %s WHERE "products_product"."id" = %s'
)
INSERT_EVENT = (
    'INSERT INTO "events_event" ("uid", "type", "product_id", "sequence", "occurred_at", '
    '"data", "position") VALUES (%s::uuid, %s, %s, %s, %s, %s::jsonb, NULL) '
    'RETURNING "events_event"."id"'
)
INSERT = (
    'INSERT INTO "products_stockmovement" ("product_id", "sku", "sku_key", "product_name", '
    '"kind", "reason", "note", "reference", "delta", "quantity_before", "quantity_after", '
    '"user_id", "source", "created_at") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '
    '%s, %s, %s) RETURNING "products_stockmovement"."id"'
)
COUNT = (
    'SELECT COUNT(*) FROM (SELECT "products_product"."id" AS "col1" FROM "products_product" '
    'ORDER BY "products_product"."id" ASC LIMIT 10001) subquery'
)
PAGE = f'SELECT {SELECT} FROM "products_product" ORDER BY "products_product"."id" ASC LIMIT %s'
PRODUCT_PATH = re.compile(r"^/api/products/([0-9]{1,18})/(decrement/)?$")

_local = threading.local()


def connection():
    conn = getattr(_local, "connection", None)
    if conn is None or conn.closed:
        conn = _local.connection = psycopg2.connect(DATABASE_URL)
        conn.autocommit = True  # as Django: reads are single statements, writes BEGIN
    return conn


def as_json(row) -> dict:
    product = dict(zip(COLUMNS, row, strict=True)) if isinstance(row, tuple) else dict(row)
    product["price"] = str(product["price"])
    product["is_below_requirement"] = product["stock_quantity"] <= product["low_stock_threshold"]
    for field in ("created_at", "updated_at"):
        product[field] = product[field].isoformat().replace("+00:00", "Z")
    del product["version"], product["sku_key"], product["event_sequence"]
    return product


def decrement(conn, product_id: int, quantity: int):
    with conn.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(LOCK, (product_id,))
        row = cursor.fetchone()
        if row is None:
            cursor.execute("ROLLBACK")
            return 404, {"code": "not_found"}
        product = dict(zip(COLUMNS, row, strict=True))
        before = product["stock_quantity"]
        if before < quantity:
            cursor.execute("ROLLBACK")
            return 409, {"code": "insufficient_stock", "available": before}
        now = datetime.now(UTC)
        movement = (
            product_id,
            product["sku"],
            product["sku_key"],
            product["name"],
            "decrement",
            "shipped",
            "",
            "",
            -quantity,
            before,
            before - quantity,
            None,
            "api",
            now,
        )
        cursor.execute(INSERT, movement)
        (movement_id,) = cursor.fetchone()
        product.update(
            stock_quantity=before - quantity,
            version=product["version"] + 1,
            event_sequence=product["event_sequence"] + 1,
            updated_at=now,
        )
        shown = as_json(product)
        event = {"product": shown, "movement": movement_json(movement_id, movement)}
        cursor.execute(
            INSERT_EVENT,
            (
                str(uuid.uuid4()),
                "stock.changed",
                product_id,
                product["event_sequence"],
                now,
                json.dumps(event),
            ),
        )
        cursor.fetchone()
        cursor.execute(
            UPDATE,
            (before - quantity, product["version"], now, product["event_sequence"], product_id),
        )
        cursor.execute("COMMIT")
    return 200, shown


def movement_json(movement_id: int, values: tuple) -> dict:
    fields = ("product", "sku", "sku_key", "product_name", "kind", "reason", "note")
    fields += ("reference", "delta", "quantity_before", "quantity_after", "user", "source")
    movement = {"id": movement_id, **dict(zip((*fields, "created_at"), values, strict=True))}
    del movement["sku_key"]
    movement["created_at"] = movement["created_at"].isoformat().replace("+00:00", "Z")
    return movement


def read(conn, product_id: int):
    with conn.cursor() as cursor:
        cursor.execute(GET_ONE, (product_id,))
        row = cursor.fetchone()
    return (200, as_json(row)) if row else (404, {"code": "not_found"})


def first_page(conn):
    with conn.cursor() as cursor:
        cursor.execute(COUNT)
        (count,) = cursor.fetchone()
        cursor.execute(PAGE, (PAGE_SIZE,))
        rows = cursor.fetchall()
    body = {
        "count": count,
        "count_is_exact": count <= 10000,
        "next": "/api/products/?page=2" if count > PAGE_SIZE else None,
        "previous": None,
        "results": [as_json(row) for row in rows],
    }
    return 200, body


def application(environ, start_response):
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    conn = connection()
    match = PRODUCT_PATH.match(path)
    if path == "/api/products/" and method == "GET":
        status, body = first_page(conn)
    elif match and match[2] and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        quantity = json.loads(environ["wsgi.input"].read(length))["quantity"]
        status, body = decrement(conn, int(match[1]), quantity)
    elif match and not match[2] and method == "GET":
        status, body = read(conn, int(match[1]))
    else:
        status, body = 404, {"code": "not_found"}
    payload = json.dumps(body).encode()
    reason = {200: "OK", 404: "Not Found", 409: "Conflict"}[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]
