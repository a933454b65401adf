"""Products from CSV (django-import-export): create new ones, update existing ones by
SKU under the SKU rule (normalize_sku: `abc-1` updates `ABC-1`).

import-export's own save path (`instance.save()`) would bypass the services; here every
row is saved by `services.create_product` or `services.update_product`, so stock set by
an import is on the ledger (`initial` for a new product, `adjustment` for an existing
one) with source `admin`, the user, and the file's name in the note. The admin imports
in one transaction: the dry run is rolled back, and a row that fails rolls back all.
"""

from django import forms
from django.core.exceptions import ValidationError
from import_export import fields, resources, widgets

from core.filters import WholeNumberField

from . import selectors, services
from .exports import unneutralise
from .filters import MoneyField
from .models import MAX_STOCK, Product

IMPORTED_FIELDS = ["sku", "name", "description", "price", "stock_quantity", "low_stock_threshold"]


class FormFieldWidget(widgets.Widget):
    """A cell read by a form field, as the admin's form reads it (strict numbers,
    trimmed text); its refusal becomes the row's error for that column."""

    def __init__(self, form_field: forms.Field) -> None:
        super().__init__()
        self.form_field = form_field

    def clean(self, value, row=None, **kwargs):
        try:
            return self.form_field.clean("" if value is None else unneutralise(str(value)))
        except forms.ValidationError as exc:
            raise ValueError(" ".join(exc.messages)) from None

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(value)


def _field(name: str, form_field: forms.Field) -> fields.Field:
    return fields.Field(attribute=name, column_name=name, widget=FormFieldWidget(form_field))


class ProductResource(resources.ModelResource):
    sku = _field("sku", forms.CharField(max_length=64))
    name = _field("name", forms.CharField(max_length=200))
    description = _field("description", forms.CharField(required=False))
    price = _field("price", MoneyField(max_digits=12, decimal_places=2, min_value=0))
    stock_quantity = _field("stock_quantity", WholeNumberField(min_value=0, max_value=MAX_STOCK))
    low_stock_threshold = _field(
        "low_stock_threshold", WholeNumberField(min_value=0, max_value=MAX_STOCK)
    )

    class Meta:
        model = Product
        fields = IMPORTED_FIELDS
        import_id_fields = ["sku"]
        skip_unchanged = True
        report_skipped = True
        use_transactions = True

    def get_instance(self, instance_loader, row):
        """The product with this SKU under the SKU rule, not by the SKU's exact text."""
        sku = row.get("sku")
        if not isinstance(sku, str) or not sku.strip():
            return None
        return selectors.with_sku(sku.strip()).first()

    def import_field(self, field, instance, row, is_m2m=False, **kwargs):
        # An existing product keeps its SKU as written: the row only found it.
        if field.attribute == "sku" and instance.pk is not None:
            return
        super().import_field(field, instance, row, is_m2m, **kwargs)

    def save_instance(self, instance, is_create, row, **kwargs):
        """Save through the services (see the module's docstring)."""
        file_name = kwargs.get("file_name") or "CSV"
        audit = services.Audit(
            user=kwargs.get("user"),
            source=services.Source.ADMIN,
            note=f"Imported from {file_name}"[:1000],
        )
        values = {name: getattr(instance, name) for name in IMPORTED_FIELDS}
        try:
            if is_create:
                saved = services.create_product(**values, audit=audit)
            else:
                current = Product.objects.get(pk=instance.pk)
                changes = {
                    name: value
                    for name, value in values.items()
                    if name != "sku" and getattr(current, name) != value
                }
                saved = services.update_product(
                    product_id=instance.pk, changes=changes, audit=audit
                )
        except services.InventoryError as exc:
            field = "sku" if isinstance(exc, services.DuplicateSku) else "stock_quantity"
            raise ValidationError({field: exc.message}) from None
        instance.pk = saved.pk
        instance.version = saved.version
