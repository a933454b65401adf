"""Token authentication that brings the user's permissions in the same query.

Every API call checks a permission, and Django's ModelBackend would load them with
two more queries per request (the user's own, then its groups'). Here one query
reads the token, its user and both lists of permission names; they are put in the
caches that ModelBackend reads (`_user_perm_cache`, `_group_perm_cache`,
`_perm_cache`), so `user.has_perm()` answers from memory by ModelBackend's own
rules (inactive users have none, superusers have all). They are read afresh on
every request, so a change of role applies to the next one.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import CharField, F, OuterRef, Subquery, TextField, Value
from django.db.models.functions import Concat
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions


class JoinedNames(Subquery):
    """The values of a one-column subquery joined by commas (NULL when it has none)."""

    template = "(SELECT STRING_AGG(names.permission, ',') FROM (%(subquery)s) names)"
    output_field = TextField()

    def as_sqlite(self, compiler, connection, **extra_context):
        template = "(SELECT GROUP_CONCAT(names.permission, ',') FROM (%(subquery)s) names)"
        return self.as_sql(compiler, connection, template=template, **extra_context)


def permission_names(**filters) -> JoinedNames:
    """The "app_label.codename" of the permissions matching `filters`, joined by commas."""
    name = Concat(F("content_type__app_label"), Value("."), F("codename"), output_field=CharField())
    return JoinedNames(
        Permission.objects.filter(**filters)
        .order_by()
        .annotate(permission=name)
        .values("permission")
    )


def split_names(joined: str | None) -> set[str]:
    return set(joined.split(",")) if joined else set()


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's TokenAuthentication (`Authorization: Token <key>`), in one query."""

    def authenticate_credentials(self, key):
        model = self.get_model()
        User = get_user_model()
        user_permissions = User.user_permissions.field.related_query_name()
        groups = User.groups.field.related_query_name()
        try:
            token = (
                model.objects.select_related("user")
                .annotate(
                    own_permissions=permission_names(**{user_permissions: OuterRef("user_id")}),
                    group_permissions=permission_names(**{f"group__{groups}": OuterRef("user_id")}),
                )
                .get(key=key)
            )
        except model.DoesNotExist:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None

        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        user._user_perm_cache = split_names(token.own_permissions)
        user._group_perm_cache = split_names(token.group_permissions)
        user._perm_cache = user._user_perm_cache | user._group_perm_cache
        return (user, token)
