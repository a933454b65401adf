from django.contrib import admin

from .models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """The events, read-only: they are written only by the services that make changes."""

    list_display = ["position", "occurred_at", "type", "product_id", "sequence"]
    list_filter = ["type"]
    search_fields = ["=product_id"]
    ordering = ["-id"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
