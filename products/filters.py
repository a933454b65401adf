import re
from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter, SearchFilter

from . import selectors
from .models import Product, StockMovement
from .serializers import MONEY_PATTERN
from .text import normalize_sku

NO_NUL_PATTERN = r"^[^\u0000]*$"


class WholeNumberField(forms.IntegerField):
    """A whole number written as the API writes one: digits, an optional minus, no
    leading zero (`01` is a 400, as in ids and pages), no spaces, no exponent."""

    def to_python(self, value):
        if value not in self.empty_values and not re.fullmatch(r"-?(0|[1-9][0-9]*)", value):
            raise forms.ValidationError("Enter a whole number without leading zeros.")
        return super().to_python(value)


@extend_schema_field(OpenApiTypes.INT64)
class IntegerFilter(django_filters.NumberFilter):
    """A 64-bit whole number ("1.5", "1e5" or "01" is a 400, not a silent match)."""

    field_class = WholeNumberField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", -(2**63))
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


def text_filter(max_length: int, min_length: int = 1, **kwargs) -> django_filters.CharFilter:
    """A filter on a string of `min_length` to `max_length` characters, without NUL."""
    schema = {
        "type": "string",
        "minLength": min_length,
        "maxLength": max_length,
        "pattern": NO_NUL_PATTERN,
    }
    if "label" in kwargs:
        schema["description"] = kwargs["label"]  # an override's description is the only one
    # strip=False: the lengths apply to the text as sent, as the schema says (Django
    # would strip characters such as \x1f first, which no schema validator does).
    text = django_filters.CharFilter(
        min_length=min_length, max_length=max_length, strip=False, **kwargs
    )
    return extend_schema_field(schema)(text)


class MoneyField(forms.DecimalField):
    """An amount written like a price: "12.50", "3", "0.5" (no sign, no exponent)."""

    def clean(self, value):
        if isinstance(value, str) and value and not re.fullmatch(MONEY_PATTERN, value):
            raise forms.ValidationError(
                'Must be an amount like "12.50": up to 10 digits, a dot and up to 2 decimals.'
            )
        return super().clean(value)


@extend_schema_field({"type": "string", "pattern": MONEY_PATTERN, "example": "12.50"})
class MoneyFilter(django_filters.NumberFilter):
    field_class = MoneyField

    def get_max_validator(self):
        return None  # the pattern bounds it


class UtcDateTimeField(IsoDateTimeField):
    def clean(self, value):
        moment = super().clean(value)
        if moment is None:
            return None
        try:  # an offset such as +20:09 is valid ISO 8601 but not for the database
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Out of range.", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time, any offset, compared in UTC."""

    field_class = UtcDateTimeField


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


@extend_schema_field({"type": "string", "enum": ["true", "false"]})
class TrueFalseFilter(django_filters.ChoiceFilter):
    """Exactly `true` or `false`: anything else is a 400, not an ignored filter."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, choices=[("true", "true"), ("false", "false")], **kwargs)


class ProductFilter(django_filters.FilterSet):
    sku = text_filter(
        64, method="filter_sku", label="SKU (the SKU rule: any case, width or spacing)"
    )
    # Three characters at least, as for ?search=: a trigram index serves no fewer.
    name = text_filter(200, min_length=3, lookup_expr="icontains", label="Name contains")
    stock_quantity__gte = IntegerFilter(field_name="stock_quantity", lookup_expr="gte")
    stock_quantity__lte = IntegerFilter(field_name="stock_quantity", lookup_expr="lte")
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
