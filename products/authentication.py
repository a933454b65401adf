"""Token authentication that brings the user's permissions in the same query.

Every API call checks a permission, and Django's ModelBackend would load them with
two more queries per request (the user's own, then its groups'). Here one query
reads the token, its user and both lists of permission names; they are put in the
caches that ModelBackend reads (`_user_perm_cache`, `_group_perm_cache`,
`_perm_cache`), so `user.has_perm()` answers from memory by ModelBackend's own
rules (inactive users have none, superusers have all). They are read afresh on
every request, so a change of role applies to the next one.

The statement is written once per connection from the models' metadata and run as
it is (core/statements.py): building it with the ORM on every request (subqueries,
joins, concatenation) cost more CPU than the two queries it saves, and a raw queryset
around it a third of what is left.
"""

import json
from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from core.statements import RawRow


def token_statement(connection) -> str:
    """SELECT the user's columns, the token's `created`, and the user's own and its
    groups' permission names ("app_label.codename"), by token key."""
    q = connection.ops.quote_name
    User = get_user_model()
    # An array of names (PostgreSQL), or a JSON array (SQLite): exact, whatever
    # characters a custom permission's codename holds.
    collect = "ARRAY_AGG" if connection.vendor == "postgresql" else "JSON_GROUP_ARRAY"
    name = f"{collect}(ct.{q('app_label')} || '.' || p.{q('codename')})"
    permissions = (
        f"FROM {q(Permission._meta.db_table)} p "
        f"JOIN {q(ContentType._meta.db_table)} ct "
        f"ON ct.{q(ContentType._meta.pk.column)} = p.{q('content_type_id')} "
    )
    own = User.user_permissions.field
    memberships = User.groups.field
    granted = Group.permissions.field
    user_columns = ", ".join(f"u.{q(field.column)}" for field in User._meta.concrete_fields)
    token_table = Token._meta.db_table
    return (
        f"SELECT {user_columns}, t.{q('created')} AS token_created, "
        f"(SELECT {name} {permissions}"
        f"JOIN {q(own.m2m_db_table())} up ON up.{q(own.m2m_reverse_name())} = p.{q('id')} "
        f"WHERE up.{q(own.m2m_column_name())} = u.{q(User._meta.pk.column)}) AS own_permissions, "
        f"(SELECT {name} {permissions}"
        f"JOIN {q(granted.m2m_db_table())} gp ON gp.{q(granted.m2m_reverse_name())} = p.{q('id')} "
        f"JOIN {q(memberships.m2m_db_table())} ug "
        f"ON ug.{q(memberships.m2m_reverse_name())} = gp.{q(granted.m2m_column_name())} "
        f"WHERE ug.{q(memberships.m2m_column_name())} = u.{q(User._meta.pk.column)}) "
        "AS group_permissions "
        f"FROM {q(token_table)} t JOIN {q(User._meta.db_table)} u "
        f"ON u.{q(User._meta.pk.column)} = t.{q('user_id')} "
        f"WHERE t.{q('key')} = %s"
    )


def token_columns() -> list:
    """The fields of the statement's columns (None: a list of permission names)."""
    return [*get_user_model()._meta.concrete_fields, Token._meta.get_field("created"), None, None]


TOKEN_ROW = RawRow(token_statement, token_columns)


@cache
def user_attnames() -> list[str]:
    return [field.attname for field in get_user_model()._meta.concrete_fields]


def names(collected: list[str] | str | None) -> set[str]:
    """The permission names the statement collected: a list, a JSON array, or NULL."""
    if collected is None:
        return set()
    return set(json.loads(collected) if isinstance(collected, str) else collected)


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's TokenAuthentication, in one query, taking `Authorization: Bearer <key>` (what
    OpenAPI tools send for a pasted key) as well as DRF's `Token <key>`."""

    def authenticate(self, request):
        # An instance per request (DRF's get_authenticators): the word it came with is
        # the one DRF's parsing expects, and the one a 401's WWW-Authenticate names.
        words = authentication.get_authorization_header(request).split()
        if words and words[0].lower() == b"bearer":
            self.keyword = "Bearer"
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        User = get_user_model()
        database = User.objects.db
        row = TOKEN_ROW.fetchone([key], using=database)
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        *columns, created, own_permissions, group_permissions = row
        user = User.from_db(database, user_attnames(), columns)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if not user.is_superuser:  # a superuser's are all, which ModelBackend finds itself
            user._user_perm_cache = names(own_permissions)
            user._group_perm_cache = names(group_permissions)
            user._perm_cache = user._user_perm_cache | user._group_perm_cache
        token = Token.from_db(database, ["key", "user_id", "created"], [key, user.pk, created])
        token.user = user
        return (user, token)


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """The docs' "Authorize" dialog: HTTP bearer, so a key pasted as
    `create_api_user` printed it is sent as `Authorization: Bearer <key>`."""

    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Paste your API token as it was printed (no prefix). Clients may "
            "send `Authorization: Bearer <key>` or `Authorization: Token <key>`.",
        }
