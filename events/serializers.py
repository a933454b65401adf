from rest_framework import serializers

from .models import Event


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
