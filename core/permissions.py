from rest_framework.permissions import BasePermission, DjangoModelPermissions


class ModelPermissions(DjangoModelPermissions):
    """Django model permissions, with reading guarded too: `view_<model>` for GET.

    A method the view does not have is let through, so that it is a 405, not a 403.
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        if getattr(view, request.method.lower(), None) is None:
            return True
        return super().has_permission(request, view)


class HasPermission(BasePermission):
    """The user holds `permission` (set by a subclass)."""

    permission: str

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm(self.permission))
