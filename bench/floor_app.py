"""The floor: the least a Python WSGI service can do to serve the benchmark's URLs.

No framework, no authentication, no validation beyond the bare minimum: psycopg2,
one connection per thread, and the very SQL the API issues (a decrement is BEGIN,
SELECT ... FOR UPDATE, INSERT the movement, INSERT its event, UPDATE, COMMIT; a read is
one SELECT; the first list page is the capped count and the page; a reservation is
BEGIN, SELECT ... FOR UPDATE, INSERT the reservation, UPDATE the product, COMMIT; its
fulfilment reads the reservation's product, then BEGIN, locks the product and the
reservation, INSERTs the movement and its event, UPDATEs both, COMMIT). `bench/suite.py`
serves it with the same gunicorn settings as `make serve`:

    DATABASE_URL=postgres://... gunicorn -c gunicorn.conf.py bench.floor_app:application
"""

import json
import os
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta

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
    "reserved_quantity",
    "reservations_expire_at",
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
PRODUCT_PATH = re.compile(r"^/api/products/([0-9]{1,18})/(decrement/|reservations/)?$")
FULFIL_PATH = re.compile(r"^/api/reservations/([0-9]{1,18})/fulfil/$")
RESERVATION_COLUMNS = (
    "id",
    "product_id",
    "quantity",
    "fulfilled_quantity",
    "state",
    "reference",
    "expires_at",
    "created_by_id",
    "created_at",
    "ended_at",
    "movement_id",
)
INSERT_RESERVATION = (
    'INSERT INTO "reservations_reservation" ("product_id", "quantity", "fulfilled_quantity", '
    '"state", "reference", "expires_at", "created_by_id", "created_at", "ended_at", '
    '"movement_id") VALUES (%s, %s, NULL, %s, %s, %s, %s, %s, NULL, NULL) '
    'RETURNING "reservations_reservation"."id"'
)
UPDATE_RESERVED = (
    'UPDATE "products_product" SET "reserved_quantity" = %s, "reservations_expire_at" = %s, '
    '"version" = %s, "updated_at" = %s, "event_sequence" = %s '
    'WHERE "products_product"."id" = %s'
)
UPDATE_FULFILLED = (
    'UPDATE "products_product" SET "stock_quantity" = %s, "reserved_quantity" = %s, '
    '"reservations_expire_at" = %s, "version" = %s, "updated_at" = %s, "event_sequence" = %s '
    'WHERE "products_product"."id" = %s'
)
PRODUCT_OF_RESERVATION = (
    'SELECT "reservations_reservation"."product_id" FROM "reservations_reservation" '
    'WHERE "reservations_reservation"."id" = %s LIMIT 21'
)
RESERVATION_SELECT = ", ".join(
    f'"reservations_reservation"."{column}"' for column in RESERVATION_COLUMNS
)
LOCK_RESERVATION = (
    f'SELECT {RESERVATION_SELECT}, "auth_user"."username" FROM "reservations_reservation" '
    'LEFT OUTER JOIN "auth_user" ON ("reservations_reservation"."created_by_id" = '
    '"auth_user"."id") WHERE "reservations_reservation"."id" = %s LIMIT 21 '
    'FOR UPDATE OF "reservations_reservation"'
)
END_RESERVATION = (
    'UPDATE "reservations_reservation" SET "state" = %s, "ended_at" = %s, '
    '"fulfilled_quantity" = %s, "movement_id" = %s WHERE "reservations_reservation"."id" = %s'
)

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
    product["available_quantity"] = max(product["stock_quantity"] - product["reserved_quantity"], 0)
    product["is_over_reserved"] = product["reserved_quantity"] > product["stock_quantity"]
    for field in ("created_at", "updated_at"):
        product[field] = product[field].isoformat().replace("+00:00", "Z")
    del product["version"], product["sku_key"], product["event_sequence"]
    del product["reservations_expire_at"]
    return product


def reservation_json(values: dict, username=None) -> dict:
    shown = {column.removesuffix("_id"): value for column, value in values.items()}
    shown["id"], shown["created_by"] = values["id"], username
    for field in ("expires_at", "created_at", "ended_at"):
        if shown[field] is not None:
            shown[field] = shown[field].isoformat().replace("+00:00", "Z")
    return shown


def locked_product(cursor, product_id: int) -> dict | None:
    """BEGIN, then the product's row locked (None, rolled back, when there is none)."""
    cursor.execute("BEGIN")
    cursor.execute(LOCK, (product_id,))
    row = cursor.fetchone()
    if row is None:
        cursor.execute("ROLLBACK")
        return None
    return dict(zip(COLUMNS, row, strict=True))


def decrement(conn, product_id: int, quantity: int):
    with conn.cursor() as cursor:
        product = locked_product(cursor, product_id)
        if product is None:
            return 404, {"code": "not_found"}
        before = product["stock_quantity"]
        if before < quantity:
            cursor.execute("ROLLBACK")
            return 409, {"code": "insufficient_stock", "available": before}
        if before - product["reserved_quantity"] < quantity:
            cursor.execute("ROLLBACK")
            return 409, {"code": "insufficient_available"}
        now = datetime.now(UTC)
        movement = decrement_movement(product, quantity, now)
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


def reserve(conn, product_id: int, quantity: int, expires_in: int, reference: str = ""):
    with conn.cursor() as cursor:
        product = locked_product(cursor, product_id)
        if product is None:
            return 404, {"code": "not_found"}
        available = max(product["stock_quantity"] - product["reserved_quantity"], 0)
        if available < quantity:
            cursor.execute("ROLLBACK")
            return 409, {"code": "insufficient_available", "available": available}
        now = datetime.now(UTC)
        values = {
            "product_id": product_id,
            "quantity": quantity,
            "fulfilled_quantity": None,
            "state": "active",
            "reference": reference,
            "expires_at": now + timedelta(seconds=expires_in),
            "created_by_id": None,
            "created_at": now,
            "ended_at": None,
            "movement_id": None,
        }
        cursor.execute(
            INSERT_RESERVATION,
            (product_id, quantity, "active", reference, values["expires_at"], None, now),
        )
        (values["id"],) = cursor.fetchone()
        due = product["reservations_expire_at"]
        due = values["expires_at"] if due is None else min(due, values["expires_at"])
        product["version"] += 1
        reserved = product["reserved_quantity"] + quantity
        cursor.execute(
            UPDATE_RESERVED,
            (reserved, due, product["version"], now, product["event_sequence"], product_id),
        )
        cursor.execute("COMMIT")
    return 201, reservation_json(values)


def fulfil(conn, reservation_id: int):
    with conn.cursor() as cursor:
        cursor.execute(PRODUCT_OF_RESERVATION, (reservation_id,))
        found = cursor.fetchone()
        if found is None:
            return 404, {"code": "not_found"}
        cursor.execute("BEGIN")
        cursor.execute(LOCK, found)
        product = dict(zip(COLUMNS, cursor.fetchone(), strict=True))
        cursor.execute(LOCK_RESERVATION, (reservation_id,))
        *row, username = cursor.fetchone()
        reservation = dict(zip(RESERVATION_COLUMNS, row, strict=True))
        quantity, before = reservation["quantity"], product["stock_quantity"]
        if reservation["state"] != "active" or before < quantity:
            cursor.execute("ROLLBACK")
            return 409, {"code": "reservation_not_active", "state": reservation["state"]}
        now = datetime.now(UTC)
        reference = f"reservation:{reservation_id}"
        movement = decrement_movement(product, quantity, now, reservation["reference"], reference)
        cursor.execute(INSERT, movement)
        (movement_id,) = cursor.fetchone()
        reserved = product["reserved_quantity"] - quantity
        product.update(
            stock_quantity=before - quantity,
            reserved_quantity=reserved,
            reservations_expire_at=product["reservations_expire_at"] if reserved else None,
            version=product["version"] + 1,
            event_sequence=product["event_sequence"] + 1,
            updated_at=now,
        )
        event = {
            "product": as_json(dict(product)),
            "movement": movement_json(movement_id, movement),
        }
        cursor.execute(
            INSERT_EVENT,
            (
                str(uuid.uuid4()),
                "stock.changed",
                product["id"],
                product["event_sequence"],
                now,
                json.dumps(event),
            ),
        )
        cursor.fetchone()
        cursor.execute(
            UPDATE_FULFILLED,
            (
                product["stock_quantity"],
                reserved,
                product["reservations_expire_at"],
                product["version"],
                now,
                product["event_sequence"],
                product["id"],
            ),
        )
        cursor.execute(END_RESERVATION, ("fulfilled", now, quantity, movement_id, reservation_id))
        cursor.execute("COMMIT")
    reservation.update(state="fulfilled", ended_at=now, fulfilled_quantity=quantity)
    reservation["movement_id"] = movement_id
    return 200, reservation_json(reservation, username)


def decrement_movement(
    product: dict, quantity: int, now: datetime, note: str = "", reference: str = ""
) -> tuple:
    """The INSERT's values for a `decrement` of `quantity` from a locked product."""
    before = product["stock_quantity"]
    return (
        product["id"], product["sku"], product["sku_key"], product["name"], "decrement",
        "shipped", note, reference, -quantity, before, before - quantity, None, "api", now,
    )  # fmt: skip


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
    fulfilment = FULFIL_PATH.match(path)
    if path == "/api/products/" and method == "GET":
        status, body = first_page(conn)
    elif match and match[2] == "reservations/" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length))
        status, body = reserve(
            conn,
            int(match[1]),
            request["quantity"],
            request.get("expires_in", 900),
            request.get("reference", ""),
        )
    elif fulfilment and method == "POST":
        status, body = fulfil(conn, int(fulfilment[1]))
    elif match and match[2] and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        quantity = json.loads(environ["wsgi.input"].read(length))["quantity"]
        status, body = decrement(conn, int(match[1]), quantity)
    elif match and not match[2] and method == "GET":
        status, body = read(conn, int(match[1]))
    else:
        status, body = 404, {"code": "not_found"}
    payload = json.dumps(body).encode()
    reason = {200: "OK", 201: "Created", 404: "Not Found", 409: "Conflict"}[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]
