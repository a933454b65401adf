"""Pagination that stays fast on a million rows.

Page numbers, for people: the `count` is exact up to COUNT_CAP; past it, `count` is
COUNT_CAP and `count_is_exact` is false, and pages stop there (an exact COUNT(*) of
a million rows costs ~100 ms on every request, and so does counting 10,000 matches of
a common search word). Cursors, for programs that walk the whole catalogue:
`?cursor=` (empty for the first page), then each response's `next`; every page costs
the same however deep it is. A cursor is `a<id>` (the rows after that id) or `b<id>`
(the rows before it, for `previous`): every string of that shape is a place to start,
so the schema's pattern describes exactly the cursors the API accepts.

A page filtered by a substring (`?search=`, `?name=`) does not trust the planner's
guess of how many rows match: `LIKE '%word%'` has no statistics the planner reads well
(none at all before the table's first ANALYZE, and words are assumed independent), and
a guess of "few" for a word that matches everything turns into a trigram bitmap and
a sort of a million rows (1.3 s). So such a page, numbered or after a cursor, is first
looked for among the first WALK_ROWS rows in its order (after the cursor), and its
count among the first WALK_ROWS rows of the table (COMMON_WALK_ROWS when the page was
found so; the WALK_ROWS rows from the page's first row when it was not; see `walk`).
That is the whole answer whenever matches are common; only otherwise are the page and
the count asked for the planner's way, which is then the right way for rare matches.
"""

import re

from django.conf import settings
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import F, Field, Func, Q, QuerySet, Value
from django.db.models.lookups import Contains, GreaterThanOrEqual, LessThanOrEqual
from django.utils.functional import cached_property
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import Cursor, CursorPagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from .limits import MAX_ID

COUNT_CAP = 1_000
# How many rows a page filtered by a substring reads, in its order, before it gives up
# on finding its matches among them (a few milliseconds on a million products).
WALK_ROWS = 2_000
# When a page was found among those, its matches are common: its count reads up to this
# many rows for COUNT_CAP + 1 matches (enough for a word in one product of 20).
COMMON_WALK_ROWS = 20_000
# A page the walk did not find is read from all its matches (`page_from_matches`) only
# when walking its order's index to it would read more than this many rows, as the
# matches among the walked rows predict: a deep page of a common word in name order is
# an index walk of a few thousand rows, where reading and sorting every match is not.
DENSE_WALK_ROWS = 20_000
MAX_PAGE_SIZE = 500
MAX_PAGE = 10**9
# How every number in a URL is written (JSON Schema's `pattern` applies only to strings,
# so an integer parameter says it in words).
DECIMAL = "Written in decimal digits without a leading zero"
# Empty (the first page), or after/before an id (19 digits: up to 9,999,999,999,999,999,999,
# past the largest id; such a cursor is still well-defined, see decode_cursor).
CURSOR_PATTERN = r"^([ab][1-9][0-9]{0,18})?$"
CURSOR_WINS = (
    "A cursor always walks in id order: with `cursor`, `page` and `ordering` are checked "
    "but have no effect."
)


def positive_int_text(raw: str, *, maximum: int) -> bool:
    """Whether `raw` is a whole number from 1 to `maximum` written as the API writes one:
    decimal digits without a leading zero.

    One rule for every number that names a row or a page (ids in URLs, `page`,
    `page_size`, cursor positions): `01` is not 1, so a URL has one spelling, and no
    two spellings of one page or product are told apart anywhere else (caches, logs,
    If-Match's character-by-character comparison).
    """
    return (
        raw.isascii()
        and raw.isdigit()
        and not raw.startswith("0")
        and len(raw) <= len(str(maximum))
        and int(raw) <= maximum
    )


def positive_int(raw: str, name: str, maximum: int) -> int:
    if not positive_int_text(raw, maximum=maximum):
        raise ValidationError(
            {name: [f"Must be a whole number from 1 to {maximum}, without leading zeros."]}
        )
    return int(raw)


def walkable(queryset) -> bool:
    """Whether `walk` applies: an ordered queryset of one table, filtered by a substring."""
    query = getattr(queryset, "query", None)
    return (
        query is not None
        and bool(query.order_by)
        and len(query.alias_map) == 1
        and not query.annotation_select
        and not query.distinct
        and matches_substring(query.where)
    )


def matches_substring(node) -> bool:
    """Whether a WHERE clause has a substring lookup (`LIKE '%…%'`) anywhere in it."""
    if isinstance(node, Contains):  # icontains and the like are Contains too
        return True
    return any(matches_substring(child) for child in getattr(node, "children", ()))


def walk(
    queryset: QuerySet, rows: int, ordering: tuple | list = (), start: Q | None = None
) -> tuple[str, tuple] | None:
    """The SQL of `queryset` reading only the first `rows` rows of its table in
    `ordering` (any rows without one), from `start` if given (a cursor's position):
    `FROM (SELECT … FROM table [WHERE start] ORDER BY … LIMIT rows) table`.

    Its filters then cannot choose an index (a trigram bitmap of every product for a
    word that matches them all): the inner LIMIT is an index scan in the page's order
    (or a sequential scan) that stops after `rows` rows at most, and earlier once the
    outer query has what it needs. The matches found among the first rows in the
    page's order are the first matches of the whole table in that order.

    None if the SQL is not of the shape `walkable` promises (then nothing is walked).
    """
    try:
        window_sql, window_params = window(queryset, rows, ordering, start).query.sql_with_params()
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:  # a filter no row can match: the ORM's own query knows
        return None
    walked = from_rows_of(queryset, sql, window_sql)
    return None if walked is None else (walked, (*window_params, *params))


def from_rows_of(queryset: QuerySet, sql: str, rows_sql: str) -> str | None:
    """`sql` (a query of `queryset`'s table) reading the rows of `rows_sql` (a query of
    the same table's columns) as its table: `… FROM (rows_sql) table …`. None if the
    SQL is not of that shape."""
    table = connections[queryset.db].ops.quote_name(queryset.model._meta.db_table)
    head = f" FROM {table} "
    start_at = (sql + " ").find(head)
    # The main FROM comes first: the SELECT list holds only the table's own columns
    # (so no parameters precede the rows').
    if start_at < 0 or "SELECT" in sql[len("SELECT") : start_at]:
        return None
    return f"{sql[:start_at]} FROM ({rows_sql}) {table} {sql[start_at + len(head) :]}"


def window(queryset: QuerySet, rows: int, ordering: tuple | list, start: Q | None) -> QuerySet:
    """The rows `walk` reads: the first `rows` of the table in `ordering` from `start`."""
    rows_from = queryset.model._base_manager.using(queryset.db)
    if start is not None:
        rows_from = rows_from.filter(start)
    return rows_from.order_by(*ordering)[:rows]


def walked_page(page: QuerySet, start: Q | None = None) -> list | None:
    """The rows of `page` (a sliced, ordered queryset filtered by a substring), found
    among the first WALK_ROWS rows in its order from `start`; None when those hold
    too few matches (then only the planner's way can tell).

    When the table holds fewer than WALK_ROWS rows from `start` (a small table, the
    tail of a cursor walk), what the walk found is all there is.
    """
    walked = walk(page, WALK_ROWS, page.query.order_by, start) if walkable(page) else None
    if walked is None:
        return None
    rows = list(page.model._base_manager.db_manager(page.db).raw(*walked))
    if len(rows) == page.query.high_mark - page.query.low_mark:
        return rows
    read = window(page, WALK_ROWS, page.query.order_by, start).values("pk")
    sql, params = read.query.sql_with_params()
    with connections[page.db].cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql}) window_rows", params)
        return rows if cursor.fetchone()[0] < WALK_ROWS else None


def page_from_matches(page: QuerySet) -> list | None:
    """The rows of `page` (a sliced, ordered queryset filtered by a substring) read from
    all its matches, then sorted: `SELECT … FROM (SELECT … WHERE … OFFSET 0) table
    ORDER BY … LIMIT …` (`OFFSET 0` keeps the planner from merging the two).

    For a page in an order other than the id's whose matches the walk did not find
    among its first rows. The planner, expecting the matches spread through the table,
    would walk that order's index until it met enough of them, reading each row from
    wherever it lies in the table: when they all sort late (`waterproof` by name on a
    million products: 83,193 names start with it, after the other 916,807) that is
    the whole table, 1.3 s. Read from the matches (the trigram index), the page costs
    what they are, wherever they sit: 128 ms. In id order the walk reads the table in
    the order it is stored, a fifth of that per row, and the planner's statistics
    decide.

    None when the page is in id order or not of the shape `walk` reads.
    """
    if not walkable(page):
        return None
    ordering, pk = page.query.order_by, page.model._meta.pk
    if not isinstance(ordering[0], str) or ordering[0].lstrip("-") in {"pk", pk.name, pk.attname}:
        return None
    if walk_would_be_short(page):
        return None
    matches = page.query.chain()
    matches.clear_ordering(force=True)
    matches.clear_limits()
    connection = connections[page.db]
    no_limit = connection.ops.no_limit_value()  # SQLite needs a LIMIT before OFFSET
    fence = "OFFSET 0" if no_limit is None else f"LIMIT {no_limit} OFFSET 0"
    rows = page.model._base_manager.using(page.db).order_by(*ordering)
    rows = rows[page.query.low_mark : page.query.high_mark]
    try:
        matches_sql, params = matches.sql_with_params()
        sql, rows_params = rows.query.sql_with_params()
    except EmptyResultSet:
        return None
    read = from_rows_of(page, sql, f"{matches_sql} {fence}")
    if read is None:
        return None
    return list(page.model._base_manager.db_manager(page.db).raw(read, (*params, *rows_params)))


def walk_would_be_short(page: QuerySet) -> bool:
    """Whether the matches among the first WALK_ROWS rows in `page`'s order are common
    (a page's worth at least: the page lies past the walk) and dense enough that
    walking that order's index to the page's last row reads at most DENSE_WALK_ROWS
    rows."""
    unsliced = page._chain()
    unsliced.query.clear_limits()
    walked = walk(unsliced.values("pk"), WALK_ROWS, page.query.order_by)
    if walked is None:
        return False
    with connections[page.db].cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({walked[0]}) walked_matches", walked[1])
        found = cursor.fetchone()[0]
    size = page.query.high_mark - page.query.low_mark
    return found >= size and page.query.high_mark * WALK_ROWS <= found * DENSE_WALK_ROWS


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows, whatever the size of the table."""

    @cached_property
    def count(self) -> int:
        return min(self.counted, COUNT_CAP)

    def page(self, number):
        """Like Django's, with differences that matter on a million rows.

        The first page is read before anything is counted: when it is not full, it is
        the whole result, and no COUNT query is needed. A page filtered by a substring
        is looked for among the first WALK_ROWS rows in its order first (see `walk`).
        Otherwise a page asks for the page size, not just the `count` rows Django knows are left,
        which keeps the planner from walking the id index in the hope of meeting one
        rare match early (a 90 ms scan on a search for a full SKU).
        """
        if number == 1:
            rows = self._rows(0, self.per_page)
            if len(rows) < self.per_page:
                self.counted = len(rows)
            return self._get_page(rows, 1, self)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = min(bottom + self.per_page, COUNT_CAP)
        return self._get_page(self._rows(bottom, top), number, self)

    def _rows(self, bottom: int, top: int) -> list:
        page = self.object_list[bottom:top]
        rows = walked_page(page)
        if rows is None:
            rows = page_from_matches(page)
            rows = list(page) if rows is None else rows
            if rows and bottom == 0:  # a later page is counted before it is read
                self.read_from = rows[0]
            return rows
        self.found_walking = len(rows) == top - bottom
        return rows

    @cached_property
    def counted(self) -> int:
        """How many rows match, up to COUNT_CAP + 1 (more than COUNT_CAP among any rows
        is enough).

        Which rows are counted does not matter, only how many: without the ORDER BY
        the planner may use any index rather than walk the sort order. A page found
        walking has common matches: up to COMMON_WALK_ROWS of the table's rows are
        counted first. A first page that was not, but had matches, was read the
        planner's way: its matches may all sit far into its order (SEED-0001 on the
        seeded catalogue: 100,000 products, none among the first 100,000 in id order),
        so the WALK_ROWS rows from its first row in its order are counted first.
        """
        capped = self.object_list.order_by()[: COUNT_CAP + 1]
        if not walkable(self.object_list):
            return count_of(capped)
        first = getattr(self, "read_from", None)
        if first is not None:
            ordering = self.object_list.query.order_by
            start = from_row(first, ordering)
            walked = walk(capped.values("pk"), WALK_ROWS, ordering, start) if start else None
        else:
            rows = COMMON_WALK_ROWS if getattr(self, "found_walking", False) else WALK_ROWS
            walked = walk(capped.values("pk"), rows)
        if walked is not None:
            with connections[capped.db].cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM ({walked[0]}) walked", walked[1])
                found = cursor.fetchone()[0]
            if found > COUNT_CAP:
                return found
        return count_of(capped)


def count_of(queryset: QuerySet) -> int:
    """`queryset.count()` of a sliced queryset, the same statement (a COUNT over the
    slice's rows), with the slice's ids compiled as a plain SELECT: the ORM's own count
    builds and compiles an aggregation around it, a tenth of a list page's CPU."""
    try:
        sql, params = queryset.values("pk").query.sql_with_params()
    except EmptyResultSet:  # a filter no row can match: the ORM's count says 0 too
        return 0
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql}) capped", params)
        return cursor.fetchone()[0]


def from_row(row, ordering) -> Q | None:
    """The rows at or after `row` in `ordering` (field names, `-` for descending; every
    list's ends with the id, which makes "at" the row itself), or None when the ordering
    is not of columns that cannot be NULL (a comparison with NULL would drop rows).

    Written so that the index on the ordering starts at the row: when every column runs
    one way, a row comparison, `(name, id) >= ('Waterproof…', 1058)`, which such an
    index serves and the planner estimates from its first column; otherwise the first
    column's bound outside an OR, `price <= 9.50 AND (id = 7 OR price < 9.50 OR …)`.
    (`id = 100000 OR id > 100000` alone walked the 99,999 rows before the row; an
    underestimated `name >= … AND (…)` read every name after it to sort them.)
    """
    fields, ways = [], set()
    for term in ordering:
        name = term.lstrip("-") if isinstance(term, str) else None
        try:
            field = row._meta.get_field(name) if name else None
        except FieldDoesNotExist:
            return None
        if field is None or not field.concrete or field.null:
            return None
        fields.append(field)
        ways.add("lt" if term.startswith("-") else "gt")
    if len(ways) == 1:
        compare = LessThanOrEqual if ways == {"lt"} else GreaterThanOrEqual
        values = [Value(getattr(row, field.attname), output_field=field) for field in fields]
        return Q(compare(Row(*(F(field.attname) for field in fields)), Row(*values)))
    at_or_after, same = Q(pk=row.pk), Q()
    for term, field in zip(ordering, fields, strict=True):
        value = getattr(row, field.attname)
        beyond = "lt" if term.startswith("-") else "gt"
        at_or_after |= same & Q(**{f"{field.attname}__{beyond}": value})
        same &= Q(**{field.attname: value})
    first = fields[0].attname
    bound = "lte" if ordering[0].startswith("-") else "gte"
    return Q(**{f"{first}__{bound}": getattr(row, first)}) & at_or_after


class Row(Func):
    """`(a, b, …)`: a row value, compared column by column."""

    template = "(%(expressions)s)"
    output_field = Field()


class ValidatedPageSize:
    """`page_size` from 1 to MAX_PAGE_SIZE, or a 400 (never silently a default)."""

    page_size = settings.REST_FRAMEWORK["PAGE_SIZE"]
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return positive_int(raw, self.page_size_query_param, self.max_page_size)


class StrictPageNumberPagination(ValidatedPageSize, PageNumberPagination):
    """Page-number pagination whose `page` and `page_size` are validated, not guessed.

    A page that is not a positive integer is a 400 rather than page 1.
    """

    django_paginator_class = CappedCountPaginator

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        return positive_int(raw, self.page_query_param, MAX_PAGE)

    def get_paginated_response(self, data):
        paginator = self.page.paginator
        return Response(
            {
                "count": paginator.count,
                "count_is_exact": paginator.counted <= COUNT_CAP,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count"]["description"] = (
            f"Exact up to {COUNT_CAP:,}; past that, {COUNT_CAP:,}. Absent with a cursor."
        )
        response["properties"]["count_is_exact"] = {
            "type": "boolean",
            "description": f"False when there are more than {COUNT_CAP:,} results (pages "
            "stop there: filter, or walk with `cursor`). Absent with a cursor.",
        }
        response["required"] = ["results"]
        return response

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.page_query_param: {"minimum": 1, "maximum": MAX_PAGE},
            self.page_size_query_param: {"minimum": 1, "maximum": self.max_page_size},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
            parameter["description"] += f" {DECIMAL}: `01` is a 400."
            if parameter["name"] == self.page_query_param:
                parameter["description"] += " Has no effect with `cursor`."
        parameters.append(
            {
                "name": WalkingCursorPagination.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Walk the whole list in id order instead of by page number: "
                "send it empty for the first page, then follow `next` (or `previous`). "
                "`a<id>` is the rows after that id, `b<id>` the rows before it. "
                f"{CURSOR_WINS}",
                "schema": {"type": "string", "maxLength": 20, "pattern": CURSOR_PATTERN},
            }
        )
        return parameters


def check_page(request) -> None:
    """A `page` parameter, if given, is a page number (400 otherwise), wherever a
    response does not use it: a cursor walk, a CSV of the whole list."""
    page = request.query_params.get(StrictPageNumberPagination.page_query_param)
    if page is not None:
        positive_int(page, StrictPageNumberPagination.page_query_param, MAX_PAGE)


class WalkingCursorPagination(ValidatedPageSize, CursorPagination):
    """Keyset pagination in id order: the same cost for the first page and the last.

    DRF's cursors are base64 of `o=…&r=…&p=…`; here they are `a<id>` or `b<id>`. Ids
    are unique, so DRF never needs an offset (it adds one only to step over rows that
    share a position) and a cursor is just a direction and an id.
    """

    ordering = "id"

    def paginate_queryset(self, queryset, request, view=None):
        # The cursor wins over `page` (OpenAPI cannot say that two parameters exclude
        # each other, so the combination is made harmless); a bad page is still a 400.
        check_page(request)
        return super().paginate_queryset(FromCursor(queryset), request, view)

    def get_ordering(self, request, queryset, view):
        return (self.ordering,)  # whatever `ordering` says (the filter has validated it)

    def decode_cursor(self, request):
        raw = request.query_params.get(self.cursor_query_param, "")
        if raw == "":
            return None  # the first page
        if not re.fullmatch(CURSOR_PATTERN, raw):
            raise ValidationError(
                {self.cursor_query_param: ["Invalid cursor: follow `next`, or send it empty."]}
            )
        reverse, position = raw[0] == "b", int(raw[1:])
        if position > MAX_ID:  # past every id: after it nothing, before it everything
            if reverse:
                return Cursor(offset=0, reverse=True, position=None)  # the last page
            position = MAX_ID
        return Cursor(offset=0, reverse=reverse, position=str(position))

    def encode_cursor(self, cursor):
        # Ids are unique: DRF never asks for an offset, nor for a cursor without an id.
        assert cursor.offset == 0
        assert cursor.position is not None
        url = self.base_url
        for ignored in (StrictPageNumberPagination.page_query_param, "ordering"):
            url = remove_query_param(url, ignored)
        direction = "b" if cursor.reverse else "a"
        return replace_query_param(url, self.cursor_query_param, f"{direction}{cursor.position}")


class FromCursor:
    """A queryset as DRF's CursorPagination uses it — ordered, filtered by the cursor's
    position, sliced — whose page is looked for among the first WALK_ROWS rows after
    the position first (`walked_page`), as a numbered page is: a word that every
    product contains would otherwise read them all through the trigram index whenever
    the planner guesses that it is rare (1.3 s without statistics)."""

    def __init__(self, queryset: QuerySet, start: Q | None = None):
        self.queryset, self.start = queryset, start

    def order_by(self, *ordering) -> "FromCursor":
        return FromCursor(self.queryset.order_by(*ordering), self.start)

    def filter(self, **position) -> "FromCursor":
        # DRF filters by the position only (`id__gt` or `id__lt`), once.
        assert self.start is None
        return FromCursor(self.queryset.filter(**position), Q(**position))

    def __getitem__(self, bounds: slice) -> list:
        page = self.queryset[bounds]
        rows = walked_page(page, self.start)
        return list(page) if rows is None else rows
