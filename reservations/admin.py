from django.contrib import admin, messages
from django.utils import timezone

from core.admin import ReadOnlyAdmin
from products.roles import RELEASE_RESERVATIONS

from . import services
from .models import Reservation

State = Reservation.State


class StateNowFilter(admin.SimpleListFilter):
    """The state at this instant, as the API's filter: an active hold past its
    expiry is expired, tidied or not."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return State.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(Reservation.in_state_at(self.value(), timezone.now()))
        return queryset


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    """Reservations, read-only but for releasing: the services write them."""

    list_display = [
        "id",
        "product",
        "quantity",
        "state_now",
        "reference",
        "expires_at",
        "fulfilled_quantity",
        "created_by",
        "created_at",
        "ended_at",
    ]
    list_filter = [StateNowFilter]
    search_fields = ["reference"]
    list_select_related = ["product", "created_by"]
    raw_id_fields = ["product"]
    ordering = ["-id"]
    show_full_result_count = False
    actions = ["release"]

    @admin.display(description="State")
    def state_now(self, reservation: Reservation) -> str:
        return reservation.state_at(timezone.now())

    def has_release_permission(self, request) -> bool:
        return request.user.has_perm(RELEASE_RESERVATIONS)

    @admin.action(description="Release selected reservations", permissions=["release"])
    def release(self, request, queryset):
        released = []
        for reservation_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                services.release(reservation_id=reservation_id)
            except services.ReservationNotActive as exc:
                self.message_user(request, exc.message, messages.WARNING)
            except Reservation.DoesNotExist:
                continue
            else:
                released.append(str(reservation_id))
        if released:
            self.message_user(
                request, f"Released reservation(s) {', '.join(released)}.", messages.SUCCESS
            )
