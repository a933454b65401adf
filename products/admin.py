from contextlib import suppress

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from core.admin import ReadOnlyAdmin
from core.filters import WholeNumberField

from . import charts, selectors, services
from .admin_csv import MovementCsvAdminMixin, ProductCsvAdminMixin, named
from .filters import MoneyField
from .models import MAX_STOCK, Product, StockMovement
from .roles import ADJUST_STOCK, VIEW_MOVEMENTS
from .text import normalize_sku

RECENT_MOVEMENTS = 20


class SkuKeySearchMixin:
    """Django's search over `search_fields`, or rows whose SKU key contains the term's
    key: the admin finds SKUs by the same rule as the API (normalize_sku)."""

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        key = normalize_sku(search_term)
        if key:
            results |= queryset.filter(sku_key__contains=key)
        return results, may_have_duplicates


class BelowRequirementFilter(admin.SimpleListFilter):
    title = "below requirement"
    parameter_name = "below_requirement"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        below = selectors.below_requirement(queryset)
        if self.value() == "yes":
            return below
        if self.value() == "no":
            return queryset.exclude(pk__in=below.values("pk"))
        return queryset


class ProductForm(forms.ModelForm):
    """The model's own fields and rules, and the SKU rule's uniqueness (which no
    constraint Django validates can say: the unique index is on the derived key).

    Numbers are read as the API reads them: a price like "12.50" (not "1e5" or "+3"),
    stock as plain digits (not "١٢", "+5" or "1_000")."""

    price = MoneyField(max_digits=12, decimal_places=2, min_value=0, initial="0.00")
    stock_quantity = WholeNumberField(min_value=0, max_value=MAX_STOCK, initial=0)
    low_stock_threshold = WholeNumberField(min_value=0, max_value=MAX_STOCK, initial=0)

    class Meta:
        model = Product
        fields = ["sku", "name", "description", "price", "stock_quantity", "low_stock_threshold"]

    def clean_sku(self):
        sku = self.cleaned_data["sku"]
        try:
            services.check_sku_free(sku, product_id=self.instance.pk)
        except services.DuplicateSku as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        return sku


class StockQuantityForm(forms.ModelForm):
    """How many units, and why: the movement's reason, note and reference, with the
    ledger's own field rules (as the API's)."""

    quantity = forms.IntegerField(min_value=1, max_value=MAX_STOCK, initial=1)
    reason = forms.ChoiceField(
        choices=[
            ("", "default: received for increments, shipped for decrements"),
            *StockMovement.Reason.choices,
        ],
        required=False,
    )
    field_order = ["quantity", "reason", "note", "reference"]

    class Meta:
        model = StockMovement
        fields = ["note", "reference"]
        widgets = {"note": forms.TextInput}


@admin.register(Product)
class ProductAdmin(ProductCsvAdminMixin, SkuKeySearchMixin, admin.ModelAdmin):
    list_display = [
        "sku",
        "name",
        "stock_quantity",
        "reserved",
        "available",
        "low_stock_threshold",
        "below_requirement",
        "price",
    ]
    list_display_links = ["sku", "name"]
    list_filter = [BelowRequirementFilter]
    form = ProductForm
    # The SKU by its key (see get_search_results), the name as Django searches it.
    search_fields = ["name"]
    search_help_text = "A SKU (any case, width or spacing), part of one, or words of the name."
    ordering = ["sku"]
    list_per_page = 50
    show_full_result_count = False
    actions = ["increment_stock", "decrement_stock"]

    @admin.display(description="Below requirement")
    def below_requirement(self, product: Product) -> str:
        if product.is_below_requirement:
            return format_html('<strong style="color: #ba2121">{}</strong>', "Reorder")
        return "—"

    @admin.display(description="Reserved")
    def reserved(self, product: Product) -> int:
        return product.held_quantity

    @admin.display(description="Available")
    def available(self, product: Product) -> str:
        if product.is_over_reserved:
            return format_html('<strong style="color: #ba2121">{}</strong>', "0 (over-reserved)")
        return str(product.available_quantity)

    @admin.display(description="Active reservations")
    def active_reservations(self, product: Product) -> str:
        if product.pk is None:
            return "—"
        holds = selectors.holds_of(product)[:RECENT_MOVEMENTS]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    r.pk,
                    r.quantity,
                    r.reference,
                    timezone.localtime(r.expires_at).strftime("%Y-%m-%d %H:%M:%S"),
                    r.created_by or "—",
                )
                for r in holds
            ),
        )
        url = (
            reverse("admin:reservations_reservation_changelist")
            + f"?product__id__exact={product.pk}&state=active"
        )
        return format_html(
            "<p>{} held, {} available.</p><table><tr><th>Id</th><th>Quantity</th>"
            "<th>Reference</th><th>Expires</th><th>By</th></tr>{}</table>"
            '<p><a href="{}">All of its reservations (select some to release them)</a></p>',
            product.held_quantity,
            product.available_quantity,
            rows or mark_safe('<tr><td colspan="5">No active reservations.</td></tr>'),
            url,
        )

    @admin.display(description=f"Last {RECENT_MOVEMENTS} stock movements")
    def recent_movements(self, product: Product) -> str:
        if product.pk is None:
            return "—"
        movements = selectors.movements().filter(product=product)[:RECENT_MOVEMENTS]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    m.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    m.kind,
                    f"{m.delta:+d}",
                    m.quantity_before,
                    m.quantity_after,
                    m.reason,
                    m.reference,
                    m.user or "—",
                    m.source,
                )
                for m in movements
            ),
        )
        url = (
            reverse("admin:products_stockmovement_changelist") + f"?product__id__exact={product.pk}"
        )
        return format_html(
            "<table><tr><th>When</th><th>Kind</th><th>Change</th><th>Stock</th><th>Reason</th>"
            "<th>Reference</th><th>User</th><th>Source</th></tr>{}</table>"
            '<p><a href="{}">Full history</a></p>',
            rows or mark_safe('<tr><td colspan="8">No movements yet.</td></tr>'),
            url,
        )

    @admin.display(description="Stock over time")
    def stock_chart(self, product: Product) -> str:
        return render_to_string(
            "admin/products/product/stock_chart.html", {"chart": charts.stock_chart(product)}
        )

    def get_readonly_fields(self, request, obj=None):
        # Stock of an existing product moves only through the stock actions; its
        # history (chart and last movements) is shown to those who may read the ledger.
        fields = ["created_at", "updated_at"]
        if obj is not None:
            fields[:0] = ["stock_quantity", "active_reservations"]
            if request.user.has_perm(VIEW_MOVEMENTS):
                fields += ["stock_chart", "recent_movements"]
        return fields

    def get_queryset(self, request):
        # Reserved and available as they are at this instant, as the API shows them.
        return selectors.with_availability(super().get_queryset(request))

    def save_model(self, request, obj, form, change):
        """Save through the services, as the API does: the row is locked while it changes."""
        audit = services.Audit(user=request.user, source=services.Source.ADMIN)
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            saved = services.update_product(product_id=obj.pk, changes=changes, audit=audit)
        else:
            saved = services.create_product(**form.cleaned_data, audit=audit)
        obj.pk = saved.pk
        obj.created_at, obj.updated_at = saved.created_at, saved.updated_at

    def delete_model(self, request, obj):
        """Delete through the service, as the API does: locked, and announced."""
        services.delete_product(product_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for pk in queryset.order_by("pk").values_list("pk", flat=True):
            with suppress(Product.DoesNotExist):  # deleted meanwhile: done all the same
                services.delete_product(product_id=pk)

    def has_adjust_stock_permission(self, request) -> bool:
        return request.user.has_perm(ADJUST_STOCK)

    @admin.action(description="Increment stock of selected products", permissions=["adjust_stock"])
    def increment_stock(self, request, queryset):
        return self._stock_action(request, queryset, services.increment_stock, "increment")

    @admin.action(description="Decrement stock of selected products", permissions=["adjust_stock"])
    def decrement_stock(self, request, queryset):
        return self._stock_action(request, queryset, services.decrement_stock, "decrement")

    def _stock_action(self, request, queryset, operation, verb: str):
        """Ask for a quantity, then apply it to each selected product through the service."""
        form = StockQuantityForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": f"{verb.capitalize()} stock",
                "opts": self.model._meta,
                "products": queryset,
                "form": form,
                "action": request.POST["action"],
                "verb": verb,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/products/product/stock_action.html", context)

        quantity = form.cleaned_data["quantity"]
        audit = services.Audit(
            user=request.user,
            source=services.Source.ADMIN,
            reason=form.cleaned_data["reason"],
            note=form.cleaned_data["note"],
            reference=form.cleaned_data["reference"],
        )
        done = []
        for product in queryset.order_by("pk"):
            try:
                changed = operation(product_id=product.pk, quantity=quantity, audit=audit)
            except services.InventoryError as exc:
                self.message_user(request, f"{product.sku}: {exc.message}", messages.ERROR)
            except Product.DoesNotExist:
                self.message_user(request, f"{product.sku}: deleted meanwhile.", messages.ERROR)
            else:
                done.append(changed.sku)
                self.log_change(
                    request,
                    changed,
                    f"Stock {verb}ed by {quantity}; now {changed.stock_quantity}.",
                )
        if done:
            self.message_user(
                request,
                f"Stock {verb}ed by {quantity} on {len(done)} product(s): {named(done)}.",
                messages.SUCCESS,
            )
        return None


@admin.register(StockMovement)
class StockMovementAdmin(MovementCsvAdminMixin, ReadOnlyAdmin, SkuKeySearchMixin, admin.ModelAdmin):
    """The ledger, read-only: movements are written only by the stock services."""

    # Eight columns beside the filters: the list fits a 1,400-pixel screen.
    list_display = ["when", "sku", "product_name", "change", "stock", "why", "reference", "by"]
    list_display_links = ["when"]
    list_filter = ["kind", "reason", "source", "created_at"]
    search_fields = ["product_name", "reference"]
    search_help_text = (
        "A SKU (any case, width or spacing), part of one, a product name or a reference."
    )
    date_hierarchy = "created_at"
    list_select_related = ["user"]
    ordering = ["-id"]
    show_full_result_count = False

    @admin.display(description="When", ordering="-id")
    def when(self, movement: StockMovement) -> str:
        return timezone.localtime(movement.created_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="Change")
    def change(self, movement: StockMovement) -> str:
        return f"{movement.delta:+d}"

    @admin.display(description="Stock")
    def stock(self, movement: StockMovement) -> str:
        return f"{movement.quantity_before} → {movement.quantity_after}"

    @admin.display(description="Kind · reason")
    def why(self, movement: StockMovement) -> str:
        return f"{movement.kind} · {movement.reason}"

    @admin.display(description="By")
    def by(self, movement: StockMovement) -> str:
        return f"{movement.user or '—'} ({movement.get_source_display()})"
