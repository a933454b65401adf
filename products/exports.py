"""CSV exports of products and the ledger, streamed: rows are read CHUNK_ROWS at a time
and written as they come, so a million rows never sit in the server process's memory.

Directly connected, the rows come from a server-side cursor (one query; outside a
transaction Django declares it WITH HOLD, so PostgreSQL keeps the result on its side,
spilling to disk past `work_mem`). Under PgBouncer's transaction pooling there are no
server-side cursors (DISABLE_SERVER_SIDE_CURSORS: such a cursor would stay behind in
another session), and psycopg would fetch the whole result at once; there the rows are
read by keyset instead, one query per chunk, each starting after the last row of the
one before in the list's own order (the primary key breaking ties).

Formula injection: a spreadsheet runs a text cell that starts with `=`, `+`, `-`, `@`
(or a tab or carriage return before one) as a formula. Every text cell that starts so is
written with a `'` in front (`neutralise`). Numbers are written as numbers, unprefixed:
a cell like `-5` is a number to a spreadsheet, not a formula, and a delta of -5 must
stay a number that sums. The one helper is used by every export (admin and API).
"""

import csv
import operator
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from functools import reduce

from django.core.exceptions import FieldDoesNotExist
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from rest_framework import renderers
from rest_framework.renderers import JSONRenderer

from core.pagination import WalkingCursorPagination, check_page

from . import selectors
from .serializers import ProductSerializer, StockMovementSerializer

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2000  # rows per database fetch, and per piece of the response

# The API's fields, in its order (a product's computed `is_below_requirement` left out;
# a movement's `user` is the username).
PRODUCT_COLUMNS = [
    f
    for f in ProductSerializer.Meta.fields
    if f not in {"is_below_requirement", "is_over_reserved"}
]
# Reserved and available as the API shows them: selectors.with_availability's figures.
PRODUCT_FIELDS = [
    {"reserved_quantity": "reserved_now", "available_quantity": "available_now"}.get(c, c)
    for c in PRODUCT_COLUMNS
]
MOVEMENT_COLUMNS = list(StockMovementSerializer.Meta.fields)
MOVEMENT_FIELDS = [
    {"product": "product_id", "user": "user__username"}.get(column, column)
    for column in MOVEMENT_COLUMNS
]


def neutralise(value: object) -> object:
    """A cell as it is safe to open in a spreadsheet: text that would run as a formula
    gets a leading `'`; numbers, dates and empty cells are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None:
        return ""
    return value


def unneutralise(value: str) -> str:
    """A cell as it was before `neutralise`: an import reads back what an export wrote."""
    if value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value


class _Echo:
    """A file whose write() hands back what it is given, for csv.writer."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[str]:
    """The CSV text of a header and rows, in pieces of CHUNK_ROWS rows."""
    writer = csv.writer(_Echo())
    piece = [writer.writerow(header)]
    for row in rows:
        piece.append(writer.writerow([neutralise(value) for value in row]))
        if len(piece) >= CHUNK_ROWS:
            yield "".join(piece)
            piece = []
    if piece:
        yield "".join(piece)


def product_rows(queryset: QuerySet) -> Iterator[tuple]:
    if "reserved_now" not in queryset.query.annotations:
        queryset = selectors.with_availability(queryset)
    return rows_in_chunks(queryset, PRODUCT_FIELDS)


def movement_rows(queryset: QuerySet) -> Iterator[tuple]:
    return rows_in_chunks(queryset, MOVEMENT_FIELDS)


def rows_in_chunks(queryset: QuerySet, fields: Sequence[str]) -> Iterator[tuple]:
    """The queryset's `fields`, in its order, CHUNK_ROWS at a time (see the docstring)."""
    connection = connections[queryset.db]
    ordering = _keyset_ordering(queryset)
    if ordering is None or not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        yield from queryset.values_list(*fields).iterator(chunk_size=CHUNK_ROWS)
        return
    keys = [term.lstrip("-") for term in ordering]
    ordered = queryset.order_by(*ordering)
    after = None
    while True:
        chunk = ordered if after is None else ordered.filter(_after(ordering, after))
        rows = list(chunk.values_list(*fields, *keys)[:CHUNK_ROWS])
        for row in rows:
            yield row[: len(fields)]
        if len(rows) < CHUNK_ROWS:
            return
        after = rows[-1][len(fields) :]


def _keyset_ordering(queryset: QuerySet) -> list[str] | None:
    """The queryset's ordering as non-null columns of its own model, up to the primary
    key (added last if absent); None if it orders by anything else (an expression, a
    relation, a nullable column), which a keyset cannot follow."""
    opts = queryset.model._meta
    keyset = []
    for term in queryset.query.order_by or opts.ordering:
        if not isinstance(term, str):
            return None
        name = term.lstrip("-")
        if name != "pk":
            try:
                field = opts.get_field(name)
            except FieldDoesNotExist:
                return None
            if field.is_relation or field.null:
                return None
        keyset.append(term)
        if name == "pk" or field.primary_key:
            return keyset  # unique: nothing after it matters
    return [*keyset, "pk"]


def _after(ordering: list[str], values: Sequence) -> Q:
    """Rows after `values` in `ordering`: (a > x) or (a = x and b > y) or ..."""
    clauses, equal = [], Q()
    for term, value in zip(ordering, values, strict=True):
        name = term.lstrip("-")
        clauses.append(equal & Q(**{f"{name}__{'lt' if term.startswith('-') else 'gt'}": value}))
        equal &= Q(**{name: value})
    return reduce(operator.or_, clauses)


def streaming_csv(name: str, header: Sequence[str], rows: Iterable[Sequence]):
    """A streamed `text/csv` download named `<name>-<UTC time>.csv`."""
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return response


def products_csv(queryset: QuerySet) -> StreamingHttpResponse:
    return streaming_csv("products", PRODUCT_COLUMNS, product_rows(queryset))


def movements_csv(queryset: QuerySet) -> StreamingHttpResponse:
    return streaming_csv("stock-movements", MOVEMENT_COLUMNS, movement_rows(queryset))


# The API: `?format=csv` or `Accept: text/csv` on the list endpoints.


class CSVRenderer(renderers.BaseRenderer):
    """`text/csv` for content negotiation. The views answer CSV themselves, streamed
    (CsvListMixin); errors are answered as problem JSON, so this renders no data."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return b"" if data is None else str(data).encode(self.charset)


class CsvListMixin:
    """CSV of the whole filtered, ordered list, streamed, for the `csv_actions`.

    A CSV is every matching row, not one page: `page`, `page_size` and `cursor` are
    checked as for JSON (a bad one is a 400) but have no effect.
    """

    csv_actions = frozenset({"list"})

    def get_renderers(self):
        renderers = super().get_renderers()
        if getattr(self, "action", None) in self.csv_actions:
            renderers.append(CSVRenderer())
        return renderers

    def wants_csv(self, request) -> bool:
        if (
            getattr(request, "accepted_renderer", None) is None
            or request.accepted_renderer.format != "csv"
        ):
            return False
        self._check_pagination(request)
        return True

    def _check_pagination(self, request) -> None:
        paginator = self.paginator
        if paginator is None:
            return
        paginator.get_page_size(request)
        if isinstance(paginator, WalkingCursorPagination):
            paginator.decode_cursor(request)
        check_page(request)

    def handle_exception(self, exc):
        # A refusal is a problem document in JSON, whatever format was asked for.
        request = self.request
        if getattr(request, "accepted_renderer", None) is not None and (
            request.accepted_renderer.format == "csv"
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)
