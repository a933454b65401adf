"""The database itself refuses what the services refuse: the last line of defence."""

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from products.models import Product

from .conftest import make_product

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "update",
    [
        {"stock_quantity": -1},
        {"stock_quantity": F("stock_quantity") - 11},
        {"low_stock_threshold": -1},
        {"price": -1},
        {"sku": ""},
    ],
)
def test_database_rejects_what_the_rules_forbid_even_on_a_raw_update(update):
    product = make_product(stock_quantity=10)

    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(**update)

    product.refresh_from_db()
    assert product.stock_quantity == 10


def test_database_rejects_a_sku_differing_only_in_case():
    make_product(sku="Case-1")

    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(sku="CASE-1", name="dup")

    assert Product.objects.count() == 1


def test_is_below_requirement_compares_stock_with_threshold():
    assert make_product(stock_quantity=2, low_stock_threshold=2).is_below_requirement
    assert make_product(stock_quantity=1, low_stock_threshold=2).is_below_requirement
    assert not make_product(stock_quantity=3, low_stock_threshold=2).is_below_requirement
