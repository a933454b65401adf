"""The admin's CSV pieces: export of the product list and of the ledger as the
changelist shows them (its filters, search and date range), streamed; import of products
with django-import-export's dry-run preview, through the services (products/imports.py)."""

from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from import_export.admin import ImportMixin
from import_export.formats.base_formats import CSV
from import_export.results import RowResult

from . import exports
from .imports import ProductResource

NAMED_AT_MOST = 20


def named(names: list[str]) -> str:
    """Up to NAMED_AT_MOST names, then how many more."""
    shown = ", ".join(names[:NAMED_AT_MOST])
    more = len(names) - NAMED_AT_MOST
    return f"{shown} and {more} more" if more > 0 else shown


class CsvExportMixin:
    """A `csv/` URL beside the changelist that streams what the changelist shows."""

    csv_export = staticmethod(exports.products_csv)  # or exports.movements_csv

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "csv/",
                self.admin_site.admin_view(self.export_csv_view),
                name=f"{info[0]}_{info[1]}_export_csv",
            ),
            *super().get_urls(),
        ]

    def export_csv_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
            return HttpResponseRedirect(f"{url}?e=1")
        return self.csv_export(changelist.get_queryset(request))


class ProductCsvAdminMixin(CsvExportMixin, ImportMixin):
    """Export the product list; import products (inventory admins: add and change)."""

    import_export_change_list_template = "admin/products/product/csv_change_list.html"
    import_template_name = "admin/products/product/import.html"  # every row's outcome
    resource_classes = [ProductResource]
    import_formats = [CSV]

    def has_import_permission(self, request) -> bool:
        return request.user.has_perms(["products.add_product", "products.change_product"])

    def get_import_data_kwargs(self, **kwargs):
        # All or nothing: a row refused when the import is applied (the database may have
        # changed since the preview) rolls back every row, it is not skipped.
        kwargs = super().get_import_data_kwargs(**kwargs)
        kwargs.setdefault("rollback_on_validation_errors", True)
        return kwargs

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():
            problems = [
                f"row {number}: {_row_problem(row)}"
                for number, row in enumerate(result.rows, start=1)
                if row.import_type in (RowResult.IMPORT_TYPE_ERROR, RowResult.IMPORT_TYPE_INVALID)
            ]
            messages.error(request, f"Nothing was imported: {named(problems)}.")
            return HttpResponseRedirect(reverse("admin:products_product_changelist"))
        return super().process_result(result, request)

    def add_success_message(self, result, request):
        def skus(import_type: str) -> list[str]:
            return [
                row.instance.sku if row.instance is not None else row.object_repr
                for row in result.rows
                if row.import_type == import_type
            ]

        new, updated = skus(RowResult.IMPORT_TYPE_NEW), skus(RowResult.IMPORT_TYPE_UPDATE)
        parts = [f"{len(new)} new ({named(new)})" if new else "0 new"]
        parts.append(f"{len(updated)} updated ({named(updated)})" if updated else "0 updated")
        parts.append(f"{result.totals[RowResult.IMPORT_TYPE_SKIP]} unchanged")
        messages.success(request, f"Import finished: {', '.join(parts)}.")


def _row_problem(row: RowResult) -> str:
    if row.validation_error is not None:
        return "; ".join(
            f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
            for field, errors in row.validation_error.message_dict.items()
        )
    return "; ".join(str(error.error) for error in row.errors)


class MovementCsvAdminMixin(CsvExportMixin):
    """Export the ledger as filtered (kind, reason, source, dates, search)."""

    csv_export = staticmethod(exports.movements_csv)
    change_list_template = "admin/products/stockmovement/csv_change_list.html"
