from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from products.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from products.text import no_nul_characters

from .models import Delivery, DeliveryAttempt, Event, EventType, WebhookEndpoint


class EventSerializer(serializers.ModelSerializer):
    """An event as the feed lists it and a webhook delivers it."""

    id = serializers.UUIDField(
        source="uid", read_only=True, help_text="Stable: de-duplicate on it."
    )
    timestamp = serializers.DateTimeField(source="occurred_at", read_only=True)
    position = serializers.IntegerField(
        read_only=True, help_text="Feed order: pass the last one you read as `after`."
    )
    sequence = serializers.IntegerField(
        read_only=True,
        help_text="This product's events numbered 1, 2, 3 … in the order they happened "
        "(the ledger's order): order and de-duplicate by it, and a gap means one is missing.",
    )
    data = serializers.JSONField(
        read_only=True,
        help_text="`product` as the API shows it (its state after the event); "
        "`movement` for `stock.changed`.",
    )

    class Meta:
        model = Event
        fields = ["id", "type", "timestamp", "product_id", "sequence", "position", "data"]
        read_only_fields = fields


# Webhooks

# The shape of an endpoint URL (the schema's pattern); whether it may be called (https,
# a public address, a host that resolves) is the service's rule: a 422 if not.
# Printable ASCII only (an international name in punycode, a path percent-encoded), no
# credentials: the same in Python and in ECMA-262, whose `\s` differ.
URL_PATTERN = r'^[Hh][Tt][Tt][Pp][Ss]?://[!"$-.0->A-~]+([/?#][!-~]*)?$'


@extend_schema_field({"type": "string", "maxLength": 500, "pattern": r"^[^\u0000]*$"})
class EndpointDescriptionField(StrictCharField):
    """Free text up to 500 characters, without NUL (its own schema, as products'
    DescriptionField, for the same reason)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=500, allow_blank=True, validators=[no_nul_characters], **kwargs)


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false (not "yes", 1 or "true")."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class WebhookEndpointSerializer(StrictSerializer, serializers.ModelSerializer):
    """An endpoint as listed and read: never its secret."""

    url = serializers.RegexField(
        URL_PATTERN,
        max_length=2000,
        help_text="Where deliveries are POSTed: https, a public address (see the SSRF rule).",
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices),
        required=False,
        max_length=20,
        help_text="The event types to deliver; empty or absent: all of them.",
    )
    description = EndpointDescriptionField(required=False)
    is_active = StrictBooleanField(required=False)
    secret_overlap_until = serializers.DateTimeField(
        source="previous_secret_expires_at",
        read_only=True,
        allow_null=True,
        help_text="Until then the previous secret signs too (after a rotation).",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id", "url", "event_types", "description", "is_active", "disabled_reason",
            "failing_since", "secret_overlap_until", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["disabled_reason", "failing_since", "created_at", "updated_at"]


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """An endpoint with its signing secret: only in the answer that made the secret."""

    secret = serializers.CharField(
        read_only=True,
        help_text="The signing secret (`whsec_…`). Shown this once: keep it.",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class RotateSecretSerializer(StrictSerializer):
    overlap_seconds = StrictIntegerField(
        min_value=0,
        max_value=7 * 24 * 3600,
        required=False,
        default=24 * 3600,
        help_text="For this long the old secret signs too (both signatures are sent). "
        "0: at once. Default: a day.",
    )


class RedeliveredSerializer(serializers.Serializer):
    redelivered = serializers.IntegerField(help_text="How many failed deliveries were queued.")


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["at", "status_code", "duration_ms", "response_excerpt", "error"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    event = EventSerializer(read_only=True, help_text="The event, as the body carries it.")

    class Meta:
        model = Delivery
        fields = [
            "id", "endpoint", "webhook_id", "status", "attempts", "next_attempt_at",
            "last_status_code", "last_error", "created_at", "updated_at", "event",
        ]  # fmt: skip
        read_only_fields = fields


class DeliveryDetailSerializer(DeliverySerializer):
    attempt_log = DeliveryAttemptSerializer(
        source="attempts_made", many=True, read_only=True, help_text="Every attempt, oldest first."
    )

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "attempt_log"]
        read_only_fields = fields
