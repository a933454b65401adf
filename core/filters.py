"""Query filters every app's API shares: whole numbers, text, date-times, true/false,
each refusing what it cannot read (a 400) instead of matching nothing."""

import re
from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field

NO_NUL_PATTERN = r"^[^\u0000]*$"


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, which builds a filterset, its form and the form's fields
    for every request (a tenth of a list page's CPU): skipped when no query parameter
    names one of the filterset's filters, where it would filter nothing. (The views
    refuse parameters they do not document, so a filter's parameter is its name.)"""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            filters = filterset_class.base_filters
            named = any(name in filters for name in request.query_params)
            if not named and not any(f.extra.get("required") for f in filters.values()):
                return queryset
        return super().filter_queryset(request, queryset, view)


class WholeNumberField(forms.IntegerField):
    """A whole number written as the API writes one: digits, an optional minus, no
    leading zero (`01` is a 400, as in ids and pages), no spaces, no exponent."""

    def to_python(self, value):
        if value not in self.empty_values and not re.fullmatch(r"-?(0|[1-9][0-9]*)", value):
            raise forms.ValidationError("Enter a whole number without leading zeros.")
        return super().to_python(value)


class IntegerFilter(django_filters.NumberFilter):
    """A 64-bit whole number ("1.5", "1e5" or "01" is a 400, not a silent match), within
    `min_value` and `max_value`, which the schema states too."""

    field_class = WholeNumberField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", -(2**63))
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)
        schema = {"type": "integer", "format": "int64"}
        schema.update(minimum=kwargs["min_value"], maximum=kwargs["max_value"])
        extend_schema_field(schema)(self)


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


@extend_schema_field({"type": "string", "enum": ["true", "false"]})
class TrueFalseFilter(django_filters.ChoiceFilter):
    """Exactly `true` or `false`: anything else is a 400, not an ignored filter."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, choices=[("true", "true"), ("false", "false")], **kwargs)
