import re

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter, SearchFilter

from core.filters import IntegerFilter, TrueFalseFilter, UtcDateTimeFilter, text_filter

from . import selectors
from .models import Product, StockMovement
from .serializers import MONEY_PATTERN
from .text import normalize_sku


class MoneyField(forms.DecimalField):
    """An amount written like a price: "12.50", "3", "0.5" (no sign, no exponent)."""

    def clean(self, value):
        if isinstance(value, str) and value and not re.fullmatch(MONEY_PATTERN, value):
            raise forms.ValidationError(
                'Must be an amount like "12.50": up to 10 digits, a dot and up to 2 decimals.'
            )
        return super().clean(value)


@extend_schema_field({"type": "string", "pattern": MONEY_PATTERN})
class MoneyFilter(django_filters.NumberFilter):
    field_class = MoneyField

    def get_max_validator(self):
        return None  # the pattern bounds it


class StockMovementFilter(django_filters.FilterSet):
    product = IntegerFilter(field_name="product_id")
    sku = text_filter(64, method="filter_sku", label="SKU recorded on the movement (the SKU rule)")
    kind = django_filters.ChoiceFilter(choices=StockMovement.Kind.choices)
    reason = django_filters.ChoiceFilter(choices=StockMovement.Reason.choices)
    source = django_filters.ChoiceFilter(choices=StockMovement.Source.choices)
    user = IntegerFilter(field_name="user_id", label="User id")
    created_after = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created at or after (ISO 8601)"
    )
    created_before = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Created before (ISO 8601)"
    )

    class Meta:
        model = StockMovement
        fields = []

    def filter_sku(self, queryset, name, value):
        return queryset.filter(sku_key=normalize_sku(value))


class ProductFilter(django_filters.FilterSet):
    sku = text_filter(
        64, method="filter_sku", label="SKU (the SKU rule: any case, width or spacing)"
    )
    # Three characters at least, as for ?search=: a trigram index serves no fewer.
    name = text_filter(200, min_length=3, lookup_expr="icontains", label="Name contains")
    stock_quantity__gte = IntegerFilter(field_name="stock_quantity", lookup_expr="gte")
    stock_quantity__lte = IntegerFilter(field_name="stock_quantity", lookup_expr="lte")
    # On selectors.with_availability's figures: exact at the instant of the query.
    reserved_quantity__gte = IntegerFilter(method="filter_availability", lookup_expr="gte")
    reserved_quantity__lte = IntegerFilter(method="filter_availability", lookup_expr="lte")
    available_quantity__gte = IntegerFilter(method="filter_availability", lookup_expr="gte")
    available_quantity__lte = IntegerFilter(method="filter_availability", lookup_expr="lte")
    price__gte = MoneyFilter(field_name="price", lookup_expr="gte")
    price__lte = MoneyFilter(field_name="price", lookup_expr="lte")
    below_requirement = TrueFalseFilter(method="filter_below_requirement")
    updated_since = UtcDateTimeFilter(
        field_name="updated_at", lookup_expr="gte", label="Updated at or after (ISO 8601)"
    )

    class Meta:
        model = Product
        fields = []

    def filter_sku(self, queryset, name, value):
        return queryset.filter(sku_key=normalize_sku(value))

    def filter_availability(self, queryset, name, value):
        field, lookup = name.split("__")
        annotation = {"reserved_quantity": "reserved_now", "available_quantity": "available_now"}
        queryset = selectors.with_availability(queryset)
        return queryset.filter(**{f"{annotation[field]}__{lookup}": value})

    def filter_below_requirement(self, queryset, name, value):
        below = selectors.below_requirement(queryset)
        return below if value == "true" else queryset.exclude(pk__in=below.values("pk"))


# Words of three characters or more (the shortest a trigram index can serve),
# separated by spaces or commas. Word and separator characters are disjoint, so
# matching is linear. The separators are spelled out: `\s` means other characters to
# Python than to the ECMA-262 regexes that read the schema (\x1c-\x1f, \x85).
SEPARATOR = r"[\t\n\v\f\r ,]"
WORD = r"[^\t\n\v\f\r ,\x00]{3,}"
SEARCH_PATTERN = rf"^{SEPARATOR}*(?:{WORD}(?:{SEPARATOR}+{WORD})*)?{SEPARATOR}*$"
MAX_SEARCH_LENGTH = 200


class ProductSearchFilter(SearchFilter):
    """`?search=`: products whose SKU, name or description contain every word, any case.

    DRF's SearchFilter would OR one LIKE per field; one LIKE over the three fields
    joined is a single trigram index scan (see selectors.search).
    """

    search_description = (
        "Words contained in the SKU, name or description (any case), separated by spaces "
        "or commas; every word must match and have at least 3 characters."
    )

    def get_search_terms(self, request) -> list[str]:
        value = request.query_params.get(self.search_param, "")
        if len(value) > MAX_SEARCH_LENGTH or not re.fullmatch(SEARCH_PATTERN, value):
            raise ValidationError(
                {
                    self.search_param: [
                        f"Up to {MAX_SEARCH_LENGTH} characters: words of at least 3 "
                        "characters (shorter ones would scan the whole catalogue), separated "
                        "by spaces or commas. For an exact SKU use `sku`."
                    ]
                }
            )
        return [term for term in re.split(rf"{SEPARATOR}+", value) if term]

    def filter_queryset(self, request, queryset, view):
        terms = self.get_search_terms(request)
        return selectors.search(queryset, terms) if terms else queryset

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"].update(maxLength=MAX_SEARCH_LENGTH, pattern=SEARCH_PATTERN)
        return parameters


class StrictOrderingFilter(OrderingFilter):
    """`?ordering=` over the view's `ordering_fields` only: anything else is a 400.

    The id is always the last sort key, so that pages are stable.
    """

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get(self.ordering_param)
        if raw is None:
            return self.get_default_ordering(view)
        terms = [term.strip() for term in raw.split(",")]
        allowed = set(view.ordering_fields)
        unknown = [term for term in terms if term.lstrip("-") not in allowed]
        if unknown or not terms:
            raise ValidationError(
                {
                    self.ordering_param: [
                        f"Order by one or more of: {', '.join(view.ordering_fields)} "
                        "(prefix - for descending), comma-separated."
                    ]
                }
            )
        if not {"id", "-id"} & set(terms):
            terms.append("id")
        return terms

    def get_schema_operation_parameters(self, view):
        names = "|".join(view.ordering_fields)
        term = f"-?({names})"
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "Sort by these fields, comma-separated; prefix - for descending. "
                f"One of: {', '.join(view.ordering_fields)}.",
                "schema": {"type": "string", "pattern": f"^{term}(,{term})*$"},
            }
        ]
