from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import Event


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    """The events, read-only: they are written only by the services that make changes."""

    list_display = ["position", "occurred_at", "type", "product_id", "sequence"]
    list_filter = ["type"]
    search_fields = ["=product_id"]
    ordering = ["-id"]
    show_full_result_count = False
