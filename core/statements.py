"""The hot paths' statements, compiled once and run with each request's values.

Django builds and compiles a queryset to SQL anew every time it runs: for a GET by id
that was a quarter of the request's CPU, and a decrement compiles four statements. The
statements of the stock path never change shape, so each is compiled once per
database connection object (one per thread; it outlives reconnections) and then only
executed. What Django would do around them is kept: values are prepared by their
fields (`get_db_prep_save`, `pre_save`), rows are converted by the backend's
converters and become instances through `Model.from_db`, and a missing row is the
model's `DoesNotExist`.

The SQL is the same text the ORM writes (the lookups are compiled by the ORM itself),
so the query-count and PgBouncer tests pin it as before.
"""

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, models, router
from django.db.models.query import QuerySet
from django.db.transaction import TransactionManagementError

_MARKER = -7_770_777_077  # see RowByKey._compile


def _compiled(connection, key: Any, compile: Callable[[], Any]) -> Any:
    """What `compile` returns, once per connection object and `key`: the statement
    object itself (held, so that its key is never another's), or a model."""
    cache = connection.__dict__.setdefault("_inventory_statements", {})
    try:
        return cache[key]
    except KeyError:
        cache[key] = compiled = compile()
        return compiled


def _converters(connection, fields: Sequence[models.Field | None]) -> list[tuple]:
    """What the ORM would run on each column of a row read from `fields` (None: a
    column left as the driver gives it): the backend's converters, then the field's."""
    converters = []
    for position, field in enumerate(fields):
        if field is None:
            continue
        column = field.get_col(field.model._meta.db_table)
        functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if functions:
            converters.append((position, functions, column))
    return converters


def _convert(row: Sequence, converters: list[tuple], connection) -> list:
    row = list(row)
    for position, functions, expression in converters:
        value = row[position]
        for function in functions:
            value = function(value, expression, connection)
        row[position] = value
    return row


class RawRow:
    """One row of a hand-written SELECT whose columns are `fields` (None for a column
    to leave as the driver gives it), converted as the ORM converts them. `sql` and
    `fields` are called once per connection."""

    def __init__(
        self,
        sql: Callable[[Any], str],
        fields: Callable[[], Sequence[models.Field | None]],
    ) -> None:
        self.sql = sql
        self.fields = fields

    def fetchone(self, params: Sequence, using: str) -> list | None:
        connection = connections[using]
        sql, converters = _compiled(
            connection,
            self,
            lambda: (self.sql(connection), _converters(connection, self.fields())),
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return None if row is None else _convert(row, converters, connection)


class RowByKey:
    """`queryset.get(pk=key)`, compiled once per connection: e.g.
    `RowByKey(Product, lambda: Product.objects.select_for_update())`, or by another
    unique key, `RowByKey(Model, queryset, by=("scope", "key"))` and `get(scope, key)`.
    The queryset is built when it is compiled (inside the transaction a
    `select_for_update()` needs)."""

    def __init__(
        self,
        model: type[models.Model],
        queryset: Callable[[], QuerySet],
        by: Sequence[str] = ("pk",),
    ) -> None:
        self.model = model
        self.queryset = queryset
        self.by = tuple(by)

    def get(self, *key: Any) -> models.Model:
        model = self.model
        alias = router.db_for_read(model)
        connection = connections[alias]
        sql, params, positions, columns, converters, locks = _compiled(
            connection, self, lambda: self._compile(self.queryset(), alias)
        )
        if locks and connection.get_autocommit():
            # What Django checks when it compiles: a lock outside a transaction is none.
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        params = list(params)
        for position, value in zip(positions, key, strict=True):
            params[position] = value
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
        return model.from_db(alias, columns, _convert(row, converters, connection))

    def _compile(self, queryset: QuerySet, alias: str) -> tuple:
        # Each key field is compiled with a value no real key takes, then found among the
        # compiled parameters, where its value will go.
        markers = [
            _MARKER - n if name == "pk" or self.model._meta.get_field(name).get_internal_type()
            in _INTEGER_TYPES else f"\x00marker-{n}"
            for n, name in enumerate(self.by)
        ]  # fmt: skip
        compiler = queryset.filter(**dict(zip(self.by, markers, strict=True))).query.get_compiler(
            using=alias
        )
        sql, params = compiler.as_sql()
        info = compiler.klass_info
        selected = [compiler.select[i][0] for i in info["select_fields"]]
        # Only a plain selection of the model's own columns, in order, is supported.
        assert info["select_fields"] == list(range(len(selected))), "annotations not supported"
        fields = [column.target for column in selected]
        return (
            sql,
            tuple(params),
            [list(params).index(marker) for marker in markers],
            [field.attname for field in fields],
            _converters(compiler.connection, fields),
            queryset.query.select_for_update and compiler.connection.features.has_select_for_update,
        )


_INTEGER_TYPES = {
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
    "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
}  # fmt: skip


class Insert:
    """INSERT one instance of `model` (every concrete field but an auto primary key and
    generated columns) and set its primary key from RETURNING, as
    `save(force_insert=True)` does."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.fields = [
            field
            for field in model._meta.concrete_fields
            if not (field.primary_key and field.db_returning) and not field.generated
        ]

    def save(self, instance: models.Model) -> None:
        self.save_many([instance], returning=True)

    def save_many(self, instances: Sequence[models.Model], *, returning: bool = False) -> None:
        """Several rows in one statement (in batches where the database limits a
        statement's parameters, as SQLite does), without RETURNING unless asked."""
        if not instances:
            return
        alias = router.db_for_write(self.model)
        connection = connections[alias]
        head, row = _compiled(connection, (Insert, self.model), lambda: self._sql(connection))
        if returning and not connection.features.can_return_columns_from_insert:
            for instance in instances:  # SQLite before 3.35: Django's own way
                instance.save(force_insert=True, using=alias)
            return
        size = max(connection.ops.bulk_batch_size(self.fields, instances), 1)  # SQLite's limit
        for start in range(0, len(instances), size):
            batch = instances[start : start + size]
            sql = head + ", ".join([row] * len(batch))
            if returning:
                sql += f" RETURNING {connection.ops.quote_name(self.model._meta.pk.column)}"
            with connection.cursor() as cursor:
                cursor.execute(sql, self._values(batch, connection))
                if returning:
                    for instance, (key,) in zip(batch, cursor.fetchall(), strict=True):
                        instance.pk = key
        for instance in instances:
            instance._state.adding = False
            instance._state.db = alias

    def _values(self, instances: Sequence[models.Model], connection) -> list:
        return [
            field.get_db_prep_save(field.pre_save(instance, True), connection)
            for instance in instances
            for field in self.fields
        ]

    def _sql(self, connection) -> tuple[str, str]:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in self.fields)
        placeholders = ", ".join(["%s"] * len(self.fields))
        table = quote(self.model._meta.db_table)
        return f"INSERT INTO {table} ({columns}) VALUES ", f"({placeholders})"


class Update:
    """UPDATE some fields of instances, each by its primary key, as
    `save(update_fields=fields)` would write them, compiled once. Several instances are
    one `executemany` (one round trip: psycopg pipelines it)."""

    def __init__(self, model: type[models.Model], fields: Sequence[str]) -> None:
        self.model = model
        self.fields = [model._meta.get_field(name) for name in fields]

    def save(self, instance: models.Model) -> int:
        """Write `instance`'s fields; the number of rows updated (0 or 1)."""
        return self.save_many([instance])

    def save_many(self, instances: Sequence[models.Model]) -> int:
        if not instances:
            return 0
        alias = router.db_for_write(self.model)
        connection = connections[alias]
        sql = _compiled(connection, self, lambda: self._sql(connection))
        rows = [
            [field.get_db_prep_save(getattr(instance, field.attname), connection)
             for field in self.fields] + [instance.pk]
            for instance in instances
        ]  # fmt: skip
        with connection.cursor() as cursor:
            if len(rows) == 1:
                cursor.execute(sql, rows[0])
            else:
                cursor.executemany(sql, rows)
            return cursor.rowcount

    def _sql(self, connection) -> str:
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in self.fields)
        table, pk = quote(self.model._meta.db_table), quote(self.model._meta.pk.column)
        return f"UPDATE {table} SET {assignments} WHERE {table}.{pk} = %s"
