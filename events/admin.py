from django import forms
from django.contrib import admin, messages

from core.admin import ReadOnlyAdmin

from . import services
from .models import Delivery, DeliveryAttempt, Event, WebhookEndpoint


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    """The events, read-only: they are written only by the services that make changes."""

    list_display = ["position", "occurred_at", "type", "product_id", "sequence"]
    list_filter = ["type"]
    search_fields = ["=product_id"]
    ordering = ["-id"]
    show_full_result_count = False


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "event_types", "description", "is_active"]

    def clean(self):
        activating = self.cleaned_data.get("is_active") and not (
            self.instance.pk and self.instance.is_active
        )
        if self.instance.pk is None or activating:
            try:
                services.require_deliveries()
            except services.WebhookError as exc:
                raise forms.ValidationError(exc.message) from None
        return super().clean()

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if self.instance.pk is None or url != self.instance.url:
            try:
                services.check_endpoint_url(url)
            except services.WebhookError as exc:
                raise forms.ValidationError(exc.message) from None
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints, saved through the services (the secret is shown once, after saving)."""

    form = WebhookEndpointForm
    list_display = ["url", "is_active", "event_types", "disabled_reason", "failing_since"]
    list_filter = ["is_active"]
    readonly_fields = [
        "disabled_reason", "failing_since", "previous_secret_expires_at", "created_at",
        "updated_at",
    ]  # fmt: skip
    actions = ["rotate_secret", "redeliver_failed"]

    def save_model(self, request, obj, form, change) -> None:
        data = {field: form.cleaned_data[field] for field in form.Meta.fields}
        if change:
            services.update_endpoint(endpoint_id=obj.pk, changes=data)
            return
        saved = services.create_endpoint(**data)
        obj.pk = saved.pk
        self.message_user(
            request,
            f"Signing secret of {saved.url} (shown this once, keep it): {saved.secret}",
            messages.WARNING,
        )

    def delete_model(self, request, obj) -> None:
        services.delete_endpoint(endpoint_id=obj.pk)

    def delete_queryset(self, request, queryset) -> None:
        for endpoint_id in queryset.values_list("pk", flat=True):
            services.delete_endpoint(endpoint_id=endpoint_id)

    @admin.action(description="Rotate the signing secret (the old one signs for a day)")
    def rotate_secret(self, request, queryset) -> None:
        for endpoint in queryset:
            rotated = services.rotate_secret(endpoint_id=endpoint.pk, overlap_seconds=86400)
            self.message_user(
                request,
                f"New signing secret of {rotated.url} (shown this once): {rotated.secret}",
                messages.WARNING,
            )

    @admin.action(description="Redeliver the failed deliveries", permissions=["redeliver"])
    def redeliver_failed(self, request, queryset) -> None:
        for endpoint in queryset:
            try:
                count = services.redeliver_failed(endpoint_id=endpoint.pk)
            except services.WebhookError as exc:
                self.message_user(request, f"{endpoint.url}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{endpoint.url}: {count} delivery(ies) queued again.")

    def has_redeliver_permission(self, request) -> bool:
        return request.user.has_perm("events.change_delivery")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["at", "status_code", "duration_ms", "error", "response_excerpt"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Deliveries and their attempts, read-only; failed ones can be redelivered."""

    list_display = [
        "id", "endpoint", "event", "status", "attempts", "last_status_code", "next_attempt_at",
        "last_error",
    ]  # fmt: skip
    list_filter = ["status", "event__type", "endpoint"]
    list_select_related = ["endpoint", "event"]
    search_fields = ["=webhook_id"]
    ordering = ["-id"]
    show_full_result_count = False
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Delivery._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Redeliver the selected deliveries", permissions=["change"])
    def redeliver(self, request, queryset) -> None:
        done = 0
        for delivery_id in queryset.values_list("pk", flat=True):
            try:
                services.redeliver(delivery_id=delivery_id)
                done += 1
            except services.WebhookError as exc:
                self.message_user(request, f"Delivery {delivery_id}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{done} delivery(ies) queued again.")
