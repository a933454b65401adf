from rest_framework.permissions import BasePermission, DjangoModelPermissions

from .roles import ADJUST_STOCK


class ProductPermissions(DjangoModelPermissions):
    """Django model permissions, with reading guarded too: `view_product` for GET."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


class CanAdjustStock(BasePermission):
    """The `products.adjust_stock` permission: increment and decrement, nothing else."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm(ADJUST_STOCK))
