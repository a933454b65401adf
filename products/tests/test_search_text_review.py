"""Review of the stored search column (Product.search_text, migration 0014) and of
core.pagination's from_row / page_from_matches: what they must keep of before.

Runs on PostgreSQL and on SQLite.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import pagination
from products import selectors
from products.models import Product, SearchText

from .conftest import make_product

pytestmark = pytest.mark.django_db

URL = "/api/products/"


def skus(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return sorted(p["sku"] for p in response.json()["results"])


def old_search(terms) -> set[int]:
    """What ?search= matched before 0014: `icontains` over the joined expression."""
    queryset = Product.objects.alias(joined=SearchText())
    for term in terms:
        queryset = queryset.filter(joined__icontains=term)
    return set(queryset.values_list("pk", flat=True))


def new_search(terms) -> set[int]:
    return set(selectors.search(Product.objects.all(), terms).values_list("pk", flat=True))


@pytest.mark.parametrize(
    ("term", "expected"),
    [("100%", ["PCT-1"]), ("a_b", ["US-1"]), ("back\\slash", ["BS-1"])],
)
def test_like_wildcards_in_a_term_match_only_themselves(api_client, term, expected):
    make_product(sku="PCT-1", name="Tape 100% wide")
    make_product(sku="PCT-2", name="Tape 1000 wide")
    make_product(sku="US-1", name="part a_b")
    make_product(sku="US-2", name="part axb")
    make_product(sku="BS-1", name="dir back\\slash")
    make_product(sku="BS-2", name="dir backXslash")

    assert skus(api_client.get(URL, {"search": term})) == expected


NON_ASCII_NAMES = [
    "Café crème",
    "CAFÉ CRÈME",
    "Große Straße",
    "GROSSE STRASSE",
    "ΣΊΣΥΦΟΣ σίσυφος",
    "İstanbul ıstanbul",
    "ﬁle ﬂat",
    "Ǆemal ǆemal",
    "plain ascii",
]
NON_ASCII_TERMS = [
    "café", "CAFÉ", "crÈme", "straße", "STRASSE", "große", "σίσυφος", "ΣΊΣΥΦΟΣ",
    "istanbul", "İSTANBUL", "ıstanbul", "ﬁle", "FILE", "ǆemal", "Ǆemal", "ascii",
]  # fmt: skip


@pytest.mark.parametrize("term", NON_ASCII_TERMS)
def test_non_ascii_case_folding_is_what_it_was(term):
    """The stored column is UPPER() of the same text in the same collation: every term
    matches exactly the products the old expression matched."""
    for n, name in enumerate(NON_ASCII_NAMES):
        make_product(sku=f"NA-{n}", name=name, description=name.lower())

    assert new_search([term]) == old_search([term])


@pytest.mark.parametrize("terms", [["hex", "zinc"], ["zinc", "m8"], ["NUT", "nyl"]])
def test_several_terms_match_as_before(terms):
    make_product(sku="HX-1", name="Hex bolt M8", description="zinc plated")
    make_product(sku="HX-2", name="Hex nut M8", description="nylon insert")
    make_product(sku="HX-3", name="Zinc washer", description="")

    assert new_search(terms) == old_search(terms)


def test_the_name_filter_is_untouched(api_client):
    make_product(sku="NM-1", name="Gaffer tape", description="matte black")

    assert skus(api_client.get(URL, {"name": "gaffer"})) == ["NM-1"]
    assert skus(api_client.get(URL, {"name": "matte"})) == []  # description is not a name


def test_search_text_is_neither_in_the_api_nor_in_its_schema_nor_in_events(api_client):
    product = make_product(sku="API-1", name="Shown")
    data = api_client.get(f"{URL}{product.pk}/").json()
    assert "search_text" not in data
    assert "search_text" not in api_client.get("/api/schema/").content.decode()
    from events.models import Event

    assert all("search_text" not in event.data["product"] for event in Event.objects.all())


def test_every_save_path_keeps_search_text_current(api_client):
    product = make_product(sku="SV-1", name="Before", description="old words")
    # the ORM's save (as the admin's form would), update(), a bulk_update
    product.name = "Renamed"
    product.save()
    assert Product.objects.get(pk=product.pk).search_text == "SV-1 RENAMED OLD WORDS"
    Product.objects.filter(pk=product.pk).update(description="new words")
    assert Product.objects.get(pk=product.pk).search_text == "SV-1 RENAMED NEW WORDS"
    product = Product.objects.get(pk=product.pk)
    product.name = "Bulk"
    Product.objects.bulk_update([product], ["name"])
    assert Product.objects.get(pk=product.pk).search_text == "SV-1 BULK NEW WORDS"
    # the compiled stock UPDATE does not touch the column and leaves it right
    response = api_client.post(f"{URL}{product.pk}/decrement/", {"quantity": 1}, format="json")
    assert response.status_code in (200, 201), response.content
    assert Product.objects.get(pk=product.pk).search_text == "SV-1 BULK NEW WORDS"


@pytest.fixture
def ties():
    """Twelve products whose every ordering column ties in groups."""
    now = timezone.now()
    for n in range(12):
        make_product(
            sku=f"TIE-{n:02d}",
            name=["Alpha", "Beta", "Alpha", "Gamma"][n % 4],
            price=Decimal(["1.50", "2.00", "1.50"][n % 3]),
            stock_quantity=n % 2,
        )
    # updated_at ties too
    Product.objects.filter(pk__in=list(Product.objects.values_list("pk", flat=True)[:6])).update(
        updated_at=now - timedelta(days=1)
    )


@pytest.mark.parametrize(
    "ordering",
    [
        ["name", "id"],
        ["-name", "-id"],
        ["-name", "id"],
        ["name", "-price", "id"],
        ["-price", "-stock_quantity", "-id"],
        ["price", "name", "-id"],
        ["updated_at", "id"],
        ["-updated_at", "-id"],
        ["id", "name"],
        ["-id", "price"],
        ["name", "name", "id"],
        ["name", "-name", "id"],
        ["sku", "id"],
    ],
)
def test_from_row_with_ties_in_every_direction(ties, ordering):
    rows = list(Product.objects.order_by(*ordering))
    for i, row in enumerate(rows):
        start = pagination.from_row(row, ordering)
        assert start is not None
        assert list(Product.objects.filter(start).order_by(*ordering)) == rows[i:], i


@pytest.mark.parametrize(
    "ordering", ["name", "-name", "price,-name", "-updated_at", "sku", "-stock_quantity"]
)
def test_pages_read_from_their_matches_are_the_planners_pages(
    api_client, ties, monkeypatch, ordering
):
    """Every page of a search, read by page_from_matches, is the page the plain ORDER BY
    ... LIMIT ... OFFSET gives."""
    monkeypatch.setattr(pagination, "WALK_ROWS", 2)
    monkeypatch.setattr(pagination, "DENSE_WALK_ROWS", 1, raising=False)
    make_product(sku="ZZ-99", name="Zeta")  # not a match
    expected = [
        p.sku
        for p in selectors.search(Product.objects.all(), ["tie"]).order_by(
            *ordering.split(","), "id"
        )
    ]
    got = []
    with CaptureQueriesContext(connection) as queries:
        for page in (1, 2, 3):
            response = api_client.get(
                URL, {"search": "tie", "ordering": ordering, "page_size": 5, "page": page}
            )
            assert response.status_code == 200, response.json()
            got += [p["sku"] for p in response.json()["results"]]
            assert response.json()["count"] == 12
    assert got == expected
    assert any(" OFFSET 0) " in q["sql"] for q in queries)


def test_matches_substring_sees_the_new_lookup():
    queryset = selectors.search(Product.objects.order_by("name"), ["abc"])
    assert pagination.walkable(queryset)
    assert not pagination.walkable(Product.objects.filter(Q(name="abc")).order_by("name"))


def test_a_deep_page_of_a_common_word_is_not_read_from_all_its_matches(api_client, monkeypatch):
    """Rows 4,900-5,000 of `bolt` by name on 400,000 products that all match: 608 ms
    read from every match and sorted, 6 ms walking the name index (the walk's first rows
    were all matches, but the page lies past them). page_from_matches is for matches
    too sparse in the page's order, not for pages past the walk."""
    monkeypatch.setattr(pagination, "WALK_ROWS", 4)
    monkeypatch.setattr(pagination, "DENSE_WALK_ROWS", 40, raising=False)
    for n in range(30):
        make_product(sku=f"DN-{n:02d}", name=f"Dense bolt {n:02d}")
    with CaptureQueriesContext(connection) as queries:
        response = api_client.get(
            URL, {"search": "bolt", "ordering": "name", "page_size": 2, "page": 10}
        )

    assert [p["sku"] for p in response.json()["results"]] == ["DN-18", "DN-19"]
    assert not any(" OFFSET 0) " in q["sql"] for q in queries)
