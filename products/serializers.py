"""Request and response shapes. Field validation only: stock rules live in services."""

import copy
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.core.validators import RegexValidator
from django.db import models
from django.dispatch import receiver
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings

from core.limits import MAX_ID

from .models import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NOTE_LENGTH,
    MAX_STOCK,
    Product,
    StockMovement,
)
from .text import no_nul_characters, one_line_of_text

MONEY_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
MAX_UNKNOWN_FIELDS_REPORTED = 20


def rules_of(model: type[models.Model], name: str) -> list:
    """A model field's validators. The rules live on the model, where the admin's forms
    and `full_clean()` find them too; a serializer field declared by hand takes them
    from there rather than keep a copy."""
    return list(model._meta.get_field(name).validators)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer. Strings, floats (even 2.0) and booleans are refused."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string. Numbers are refused rather than turned into text, and the
    length limit and the patterns (the schema's `pattern`) apply to the string as
    sent, before trimming: `"\u000bPO-1"` is refused, not trimmed to `PO-1`."""

    def run_validation(self, data=serializers.empty):
        if isinstance(data, str) and data:  # before DRF trims it, or takes "  " for blank
            for validator in self.validators:
                if isinstance(validator, RegexValidator):
                    validator(data)
        return super().run_validation(data)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


@extend_schema_field(
    {"type": "integer", "minimum": -MAX_STOCK, "maximum": MAX_STOCK, "not": {"enum": [0]}}
)
class DeltaField(StrictIntegerField):
    """A signed, non-zero change of stock."""

    def __init__(self, **kwargs):
        super().__init__(min_value=-MAX_STOCK, max_value=MAX_STOCK, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value == 0:
            raise serializers.ValidationError("Must not be 0.")
        return value


@extend_schema_field(
    {"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH, "pattern": r"^[^\u0000]*$"}
)
class DescriptionField(StrictCharField):
    """Free text, possibly empty, up to 5,000 characters. (Its own schema: drf-spectacular
    would describe a blank-allowed field with a pattern as an ambiguous oneOf.)"""

    def __init__(self, **kwargs):
        super().__init__(
            max_length=MAX_DESCRIPTION_LENGTH,
            allow_blank=True,
            validators=rules_of(Product, "description"),
            **kwargs,
        )


@extend_schema_field(
    {"type": "string", "format": "decimal", "pattern": MONEY_PATTERN, "example": "12.50"}
)
class MoneyField(serializers.DecimalField):
    """A non-negative amount as a decimal string: "12.50", "3", "0.5" (not a JSON number,
    which cannot carry cents exactly)."""

    default_error_messages = {
        "invalid": 'Must be a string like "12.50": up to 10 digits, a dot and up to 2 decimals.'
    }

    def __init__(self, **kwargs):
        super().__init__(max_digits=12, decimal_places=2, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not re.fullmatch(MONEY_PATTERN, data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is a 400 rather than silently ignored."""

    def get_initial(self):
        """What the browsable API's form starts with: an optional field with nothing to
        pre-fill is left out rather than sent as `null`, which it would refuse."""
        initial = super().get_initial()
        if not isinstance(initial, dict):
            return initial
        fields = self.fields
        return {
            name: value
            for name, value in initial.items()
            if value is not None or name not in fields or fields[name].required
        }

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))[:MAX_UNKNOWN_FIELDS_REPORTED]
            if unknown:
                raise serializers.ValidationError(
                    {_printable(name): ["Unknown field."] for name in unknown},
                    code="unknown_field",
                )
        return super().to_internal_value(data)


def _printable(name: str) -> str:
    """A field name as it can be echoed back: lone surrogates and the like escaped."""
    return name[:100].encode("utf-8", "backslashreplace").decode("utf-8")


class ProductSerializer(StrictSerializer, serializers.ModelSerializer):
    """A product and its stock."""

    sku = StrictCharField(
        max_length=64,
        validators=rules_of(Product, "sku"),
        help_text="Stock-keeping unit: 1–64 characters of one line of visible text (spaces "
        "around it are trimmed). Unique: SKUs that differ only in case, width, composition "
        "or spacing are the same SKU (docs/api.md, SKUs).",
    )
    name = StrictCharField(max_length=200, validators=rules_of(Product, "name"))
    description = DescriptionField(required=False)
    price = MoneyField(required=False, help_text='Unit price as a decimal string, e.g. "12.50".')
    stock_quantity = StrictIntegerField(
        min_value=0,
        max_value=MAX_STOCK,
        required=False,
        help_text="Units in stock. Set on create (initial stock) or by PUT/PATCH; "
        "use increment/decrement for movements.",
    )
    low_stock_threshold = StrictIntegerField(min_value=0, max_value=MAX_STOCK, required=False)
    is_below_requirement = serializers.BooleanField(
        read_only=True, help_text="stock_quantity <= low_stock_threshold"
    )
    reserved_quantity = serializers.IntegerField(
        source="held_quantity",
        read_only=True,
        help_text="Units held by active reservations (lapsed ones left out).",
    )
    available_quantity = serializers.IntegerField(
        read_only=True,
        help_text="stock_quantity − reserved_quantity, never below 0: what a decrement "
        "or a new reservation may take.",
    )
    is_over_reserved = serializers.BooleanField(
        read_only=True,
        help_text="reserved_quantity > stock_quantity: a count found fewer units than "
        "reservations hold.",
    )

    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "name",
            "description",
            "price",
            "stock_quantity",
            "low_stock_threshold",
            "is_below_requirement",
            "reserved_quantity",
            "available_quantity",
            "is_over_reserved",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class InputSerializer(StrictSerializer):
    """A request body's serializer whose plain fields are copied shallowly.

    DRF deep-copies the declared fields for every serializer it makes, which runs each
    field's `__init__` again: a sixth of a decrement's CPU. Binding a field to its
    serializer only sets attributes on it, and validating changes none, so a shallow
    copy keeps instances apart as well. A field that holds others (a list's child, a
    nested serializer) is deep-copied as before, so that they are bound afresh too.
    """

    def get_fields(self):
        return {
            name: copy.deepcopy(field) if _holds_fields(field) else copy.copy(field)
            for name, field in self._declared_fields.items()
        }


def _holds_fields(field: serializers.Field) -> bool:
    return isinstance(
        field,
        serializers.BaseSerializer
        | serializers.ManyRelatedField
        | serializers.ListField
        | serializers.DictField
        | serializers.HStoreField
        | serializers.HiddenField,
    )


class MovementDetailsSerializer(InputSerializer):
    """Why stock changes: recorded on the movement."""

    reason = serializers.ChoiceField(
        choices=StockMovement.Reason.choices,
        required=False,
        help_text="Defaults to `received` for increments, `shipped` for decrements, "
        "`count` for counts and `correction` for adjustments.",
    )
    note = StrictCharField(
        max_length=MAX_NOTE_LENGTH,
        required=False,
        allow_blank=True,
        validators=rules_of(StockMovement, "note"),
    )
    reference = StrictCharField(
        max_length=100,
        required=False,
        allow_blank=True,
        validators=rules_of(StockMovement, "reference"),
        help_text="E.g. a purchase order or delivery number.",
    )


class CompareAndSetSerializer(MovementDetailsSerializer):
    """A stock operation that may name the stock it expects to find."""

    expected_quantity = StrictIntegerField(
        min_value=0,
        max_value=MAX_STOCK,
        required=False,
        help_text="Compare-and-set: refuse with 409 `stock_changed` unless stock is this.",
    )


class StockChangeSerializer(CompareAndSetSerializer):
    """How many units to add or remove, and why."""

    quantity = StrictIntegerField(
        min_value=1, max_value=MAX_STOCK, initial=1, help_text="Units to add or remove (≥ 1)."
    )


class StockCountSerializer(CompareAndSetSerializer):
    """The quantity found by a physical count."""

    counted_quantity = StrictIntegerField(min_value=0, max_value=MAX_STOCK)


class AdjustmentLineSerializer(StrictSerializer):
    """One product, by `product` id or by `sku`, and a signed change."""

    product = StrictIntegerField(min_value=1, max_value=MAX_ID, required=False)
    sku = StrictCharField(
        max_length=64,
        required=False,
        validators=[one_line_of_text],
        help_text="Found by the SKU rule: any case, width or spacing (docs/api.md, SKUs).",
    )
    delta = DeltaField(help_text="Units to add (+) or remove (−); not 0.")

    def validate(self, attrs):
        if ("product" in attrs) == ("sku" in attrs):
            raise serializers.ValidationError("Give exactly one of `product` (an id) or `sku`.")
        return attrs


class StockAdjustmentSerializer(MovementDetailsSerializer):
    """Several stock changes applied together: all of them, or none."""

    lines = serializers.ListField(
        child=AdjustmentLineSerializer(),
        min_length=1,
        max_length=settings.STOCK_ADJUSTMENT_MAX_LINES,
    )


class StockMovementSerializer(serializers.ModelSerializer):
    """One recorded change of stock."""

    user = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Username, if any."
    )

    class Meta:
        model = StockMovement
        fields = [
            "id",
            "product",
            "sku",
            "product_name",
            "kind",
            "reason",
            "note",
            "reference",
            "delta",
            "quantity_before",
            "quantity_after",
            "user",
            "source",
            "created_at",
        ]
        read_only_fields = fields


class StockAdjustmentResultSerializer(serializers.Serializer):
    """The movements a bulk adjustment wrote, one per line, in line order."""

    movements = StockMovementSerializer(many=True)


class TokenRequestSerializer(StrictSerializer, AuthTokenSerializer):
    """A username and password."""

    username = StrictCharField(
        max_length=150, trim_whitespace=False, write_only=True, validators=[no_nul_characters]
    )
    password = StrictCharField(
        max_length=4096,
        trim_whitespace=False,
        write_only=True,
        validators=[no_nul_characters],
        style={"input_type": "password"},
    )


class Representer:
    """`serializer.to_representation(instance)` for a serializer that only represents,
    with DRF's per-field plumbing worked out once (a third of a list page's CPU was
    DRF's, field by field).

    The plain fields (a model attribute of their own, not a method) are read in one
    `attrgetter` call and written as DRF writes them: integers, strings, booleans, ISO 8601
    date-times (in the request's time zone, looked up once per call) and decimals that
    already have the field's places, directly; anything else by the field's own
    `to_representation`. Other fields (related, dotted or `*` sources) go through DRF's
    `get_attribute` as before. products/tests/test_representation.py compares the
    result with the serializer's. Fields keep no per-request state when they only
    represent, so one serves every thread."""

    def __init__(self, serializer: serializers.Serializer) -> None:
        self.serializer = serializer
        model = serializer.Meta.model
        fields = list(serializer._readable_fields)
        plain = [field for field in fields if _is_plain(field, model)]
        self.names = [field.field_name for field in plain]
        attributes = [field.source_attrs[0] for field in plain]
        read = operator.attrgetter(*attributes)
        self.read = read if len(attributes) > 1 else lambda instance: (read(instance),)
        self.writers = [(field.field_name, *_writer(field)) for field in plain]
        self.others = [field for field in fields if field not in plain]
        self.order = [field.field_name for field in fields] if self.others else None

    def __call__(self, instance) -> dict:
        return self.many([instance])[0]

    def many(self, instances: Iterable) -> list[dict]:
        zone = timezone.get_current_timezone() if settings.USE_TZ else None
        names, read, writers, others, order = (
            self.names, self.read, self.writers, self.others, self.order
        )  # fmt: skip
        represented = []
        for instance in instances:
            try:
                values = dict(zip(names, read(instance), strict=True))
            except AttributeError:  # DRF may default or skip it: DRF's way, then
                represented.append(dict(self.serializer.to_representation(instance)))
                continue
            for name, as_it_is, kind, write in writers:
                value = values[name]
                if value is None or type(value) is as_it_is:
                    continue  # None is null; an int, str or bool is written as it is
                if (
                    kind is datetime
                    and isinstance(value, datetime)
                    and zone is not None
                    and timezone.is_aware(value)
                ):
                    try:
                        written = value.astimezone(zone).isoformat()
                    except OverflowError:  # out of range in this time zone: DRF's error
                        written = write(value)
                    value = written[:-6] + "Z" if written.endswith("+00:00") else written
                elif (
                    kind is Decimal
                    and isinstance(value, Decimal)
                    and write.is_written_as_it_is(value)
                ):
                    value = f"{value:f}"
                else:
                    value = write(value)
                values[name] = value
            for field in others:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
                empty = (value.pk if isinstance(value, PKOnlyObject) else value) is None
                values[field.field_name] = None if empty else field.to_representation(value)
            if order:
                values = {name: values[name] for name in order if name in values}
            represented.append(values)
        return represented


def _is_plain(field: serializers.Field, model: type[models.Model]) -> bool:
    """Read as `getattr(instance, name)`: what DRF's own `get_attribute` does for it."""
    return (
        type(field).get_attribute is serializers.Field.get_attribute
        and len(field.source_attrs) == 1
        and not callable(getattr(model, field.source_attrs[0], None))
    )


def _writer(field: serializers.Field) -> tuple[type | None, type | None, Callable]:
    """(the type of the values this field writes as they are; the type of those that
    Representer writes itself; the field's own writing, for every other value)."""
    method, write = type(field).to_representation, field.to_representation
    if method is serializers.IntegerField.to_representation or (
        method is serializers.BigIntegerField.to_representation
        and not getattr(field, "coerce_to_string", api_settings.COERCE_BIGINT_TO_STRING)
    ):
        return int, None, write
    if method is serializers.BooleanField.to_representation:
        return bool, None, write
    if method is serializers.CharField.to_representation:
        return str, None, write
    if (
        method is serializers.DateTimeField.to_representation
        and not hasattr(field, "timezone")
        and getattr(field, "format", api_settings.DATETIME_FORMAT) == ISO_8601
    ):
        return None, datetime, write
    if (
        method is serializers.DecimalField.to_representation
        and getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)
        and not field.localize
        and not field.normalize_output
        and field.decimal_places is not None
        and field.max_digits is not None
    ):
        return None, Decimal, _DecimalWriter(field)
    return None, None, write


class _DecimalWriter:
    """A decimal field's own writing, and the shape of a value it would write as it is:
    `decimal_places` places, at most `max_digits` digits."""

    def __init__(self, field: serializers.DecimalField) -> None:
        self.write = field.to_representation
        self.exponent, self.digits = -field.decimal_places, field.max_digits

    def __call__(self, value):
        return self.write(value)

    def is_written_as_it_is(self, value: Decimal) -> bool:
        _, digits, exponent = value.as_tuple()
        return exponent == self.exponent and len(digits) <= self.digits


@cache
def representer(serializer_class: type[serializers.Serializer]) -> Representer:
    """The one Representer of a serializer class: building a ModelSerializer's fields
    (it introspects the model) was a tenth of a GET's CPU time."""
    return Representer(serializer_class())


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs) -> None:
    """The Representers' writers follow DRF's and Django's settings (tests change them)."""
    if setting in ("REST_FRAMEWORK", "USE_TZ", "TIME_ZONE"):
        representer.cache_clear()


def represent_product(product: Product) -> dict:
    """A product as the API shows it."""
    return representer(ProductSerializer)(product)


def represent_products(products: Iterable[Product]) -> list[dict]:
    """A page of products as the API shows them."""
    return representer(ProductSerializer).many(products)


def represent_movement(movement: StockMovement) -> dict:
    """A ledger movement as the API shows it."""
    return representer(StockMovementSerializer)(movement)


def represent_movements(movements: Iterable[StockMovement]) -> list[dict]:
    """A page of ledger movements as the API shows them."""
    return representer(StockMovementSerializer).many(movements)
