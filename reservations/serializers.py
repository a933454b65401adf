"""Reservation request and response shapes. Field validation only: the rules live in
services."""

from collections.abc import Iterable

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from products.models import MAX_STOCK
from products.serializers import (
    InputSerializer,
    StrictCharField,
    StrictIntegerField,
    representer,
    rules_of,
)

from .models import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN, Reservation


class ReservationSerializer(serializers.ModelSerializer):
    """A hold of units of one product, and how it ended."""

    state = serializers.SerializerMethodField(
        help_text="active, then exactly one of fulfilled, released, expired. A hold is "
        "expired from its `expires_at` on, whether or not the tidy-up has run."
    )
    ended_at = serializers.SerializerMethodField(
        help_text="When it stopped holding units (for an expired hold, its expires_at)."
    )
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Username, if any."
    )

    class Meta:
        model = Reservation
        fields = [
            "id",
            "product",
            "quantity",
            "fulfilled_quantity",
            "state",
            "reference",
            "expires_at",
            "created_by",
            "created_at",
            "ended_at",
            "movement",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "enum": Reservation.State.values})
    def get_state(self, reservation: Reservation) -> str:
        return reservation.state_at(timezone.now())

    @extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
    def get_ended_at(self, reservation: Reservation) -> str | None:
        if reservation.state_at(timezone.now()) == Reservation.State.EXPIRED:
            ended = reservation.ended_at or reservation.expires_at
        else:
            ended = reservation.ended_at
        return serializers.DateTimeField().to_representation(ended) if ended else None


class ReserveSerializer(InputSerializer):
    """How many units to hold, for how long, and for what."""

    quantity = StrictIntegerField(
        min_value=1, max_value=MAX_STOCK, help_text="Units to hold (≥ 1)."
    )
    expires_in = StrictIntegerField(
        min_value=MIN_EXPIRES_IN,
        max_value=MAX_EXPIRES_IN,
        default=DEFAULT_EXPIRES_IN,
        help_text=f"Seconds until the hold expires on its own: {MIN_EXPIRES_IN} to "
        f"{MAX_EXPIRES_IN} (30 days); {DEFAULT_EXPIRES_IN} by default.",
    )
    reference = StrictCharField(
        max_length=100,
        required=False,
        allow_blank=True,
        validators=rules_of(Reservation, "reference"),
        help_text="E.g. the order the units are held for.",
    )


class FulfilSerializer(InputSerializer):
    """How many of the held units ship: all of them unless fewer are given."""

    quantity = StrictIntegerField(
        min_value=1,
        max_value=MAX_STOCK,
        required=False,
        help_text="Units to take from stock, at most the reservation's quantity; the "
        "rest are freed. All of them by default.",
    )


class ReleaseSerializer(InputSerializer):
    """Nothing to give: releasing ends the hold."""


def represent_reservation(reservation: Reservation) -> dict:
    """A reservation as the API shows it."""
    return representer(ReservationSerializer)(reservation)


def represent_reservations(reservations: Iterable[Reservation]) -> list[dict]:
    """A page of reservations as the API shows them."""
    return representer(ReservationSerializer).many(reservations)
