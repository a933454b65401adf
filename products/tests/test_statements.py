"""The statements compiled once (core/statements.py) read and write what the ORM would."""

import gc
import weakref
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError

from core.statements import Insert, RowByKey, Update
from events.models import Event, EventType
from products.models import IdempotencyKey, Product, StockMovement
from products.text import normalize_sku

from .conftest import make_product, run_together

pytestmark = pytest.mark.django_db

BY_ID = RowByKey(Product, lambda: Product.objects.all())
LOCKED = RowByKey(Product, lambda: Product.objects.select_for_update())


def fields_of(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.fields}


def test_a_row_by_key_is_the_instance_the_orm_reads():
    product = make_product(price=Decimal("12.50"), description="Box of 100.")
    read = BY_ID.get(product.pk)
    assert type(read) is Product
    assert fields_of(read) == fields_of(Product.objects.get(pk=product.pk))
    assert isinstance(read.price, Decimal)
    assert read.created_at.tzinfo is not None
    assert (read._state.adding, read._state.db) == (False, "default")


def test_each_call_reads_its_own_key_and_a_missing_one_is_does_not_exist():
    first, second = make_product(), make_product()
    assert [BY_ID.get(first.pk).sku, BY_ID.get(second.pk).sku] == [first.sku, second.sku]
    with pytest.raises(Product.DoesNotExist):
        BY_ID.get(second.pk + 1000)


def test_a_locking_read_says_for_update(django_assert_num_queries):
    product = make_product()
    with transaction.atomic(), django_assert_num_queries(1) as captured:
        assert LOCKED.get(product.pk).pk == product.pk
    locks = captured.captured_queries[0]["sql"].rstrip().endswith("FOR UPDATE")
    assert locks == connection.features.has_select_for_update  # SQLite locks the database


def test_an_insert_writes_every_field_as_save_would_and_sets_the_key():
    product = make_product()
    movement = StockMovement(
        product=product, sku=" Bolt-1 ", product_name=product.name, kind="increment",
        reason="received", note="", reference="PO-1", delta=5, quantity_before=0,
        quantity_after=5, user=None, source="api",
    )  # fmt: skip
    Insert(StockMovement).save(movement)
    assert movement.pk is not None
    assert movement._state.adding is False
    stored = StockMovement.objects.get(pk=movement.pk)
    assert fields_of(stored) == fields_of(movement)
    assert stored.sku_key == normalize_sku(" Bolt-1 ")  # the field's own pre_save ran
    assert stored.created_at is not None  # and auto_now_add's


SEQUENCES = (101, 102, 103)  # after the product's own events


def test_many_rows_in_one_insert(django_assert_num_queries):
    product = make_product()
    events = [
        Event(type=EventType.STOCK_CHANGED, product_id=product.pk, sequence=n, data={"n": n})
        for n in SEQUENCES
    ]
    with django_assert_num_queries(1):
        Insert(Event).save_many(events)
    stored = Event.objects.filter(product_id=product.pk, sequence__gt=100).order_by("sequence")
    assert [(event.sequence, event.data) for event in stored] == [(n, {"n": n}) for n in SEQUENCES]


def test_an_update_writes_only_its_fields_of_only_that_row():
    product, other = make_product(stock_quantity=3), make_product(stock_quantity=3)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    update = Update(Product, ["stock_quantity", "updated_at"])
    product.stock_quantity, product.updated_at, product.name = 9, when, "not written"
    assert update.save(product) == 1
    gone = Product(pk=other.pk + 1000, stock_quantity=1, updated_at=when)
    assert update.save(gone) == 0
    product.refresh_from_db()
    other.refresh_from_db()
    assert (product.stock_quantity, product.updated_at) == (9, when)
    assert product.name != "not written"
    assert other.stock_quantity == 3


def test_several_updates_in_one_round_trip(django_assert_num_queries):
    products = [make_product(stock_quantity=n) for n in (1, 2, 3)]
    for product in products:
        product.stock_quantity += 10
    with django_assert_num_queries(1):
        Update(Product, ["stock_quantity"]).save_many(products)
    stored = Product.objects.filter(pk__in=[p.pk for p in products]).order_by("pk")
    assert [product.stock_quantity for product in stored] == [11, 12, 13]


@pytest.mark.django_db(transaction=True)
def test_each_thread_compiles_its_own_statement_and_reads_right():
    products = [make_product() for _ in range(4)]
    seen, errors = {}, []

    def reader(product):
        def read():
            try:
                seen[product.pk] = BY_ID.get(product.pk).sku
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        return read

    run_together([reader(product) for product in products])
    assert not errors
    assert seen == {product.pk: product.sku for product in products}


def test_a_row_by_another_unique_key():
    keys = IdempotencyKey.objects
    by_scope_and_key = RowByKey(IdempotencyKey, lambda: keys.all(), by=("scope", "key"))
    first = IdempotencyKey.objects.create(scope="user:1", key="a", fingerprint="f1")
    IdempotencyKey.objects.create(scope="user:2", key="a", fingerprint="f2")
    assert by_scope_and_key.get("user:1", "a").pk == first.pk
    assert by_scope_and_key.get("user:2", "a").fingerprint == "f2"
    with pytest.raises(IdempotencyKey.DoesNotExist):
        by_scope_and_key.get("user:3", "a")


@pytest.mark.django_db(transaction=True)
def test_a_locking_read_outside_a_transaction_is_refused_as_the_orm_refuses_it():
    product = make_product()
    with transaction.atomic():
        LOCKED.get(product.pk)  # compiled inside a transaction
    if connection.features.has_select_for_update:
        with pytest.raises(TransactionManagementError):
            LOCKED.get(product.pk)  # a lock that would end with the statement
    else:
        assert LOCKED.get(product.pk).pk == product.pk  # SQLite ignores it, as the ORM does


def test_a_statement_s_compiled_sql_is_never_another_one_s():
    product = make_product()
    key = IdempotencyKey.objects.create(scope="s", key="k", fingerprint="f")
    reader = RowByKey(IdempotencyKey, lambda: IdempotencyKey.objects.all())
    reader.get(key.pk)  # compiled for this connection
    compiled = weakref.ref(reader)
    del reader
    gc.collect()
    # The connection keeps the statement it compiled, so no new statement can take its
    # place (its address) and find its SQL.
    assert compiled() is not None
    assert RowByKey(Product, lambda: Product.objects.all()).get(product.pk).sku == product.sku


def test_many_rows_are_inserted_in_batches_where_the_database_limits_parameters(
    monkeypatch, django_assert_num_queries
):
    product = make_product()
    monkeypatch.setattr(connection.ops, "bulk_batch_size", lambda fields, objs: 2)
    movements = [
        StockMovement(
            product=product, sku=product.sku, product_name=product.name, kind="adjustment",
            reason="correction", delta=n, quantity_before=0, quantity_after=n, source="api",
        )
        for n in range(1, 6)
    ]  # fmt: skip
    with django_assert_num_queries(3):
        Insert(StockMovement).save_many(movements, returning=True)
    assert [StockMovement.objects.get(pk=m.pk).delta for m in movements] == [1, 2, 3, 4, 5]
