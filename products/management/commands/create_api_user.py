from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from products.roles import ROLE_GROUPS


class Command(BaseCommand):
    help = (
        "Create or update a user in a role (admin = Inventory admin, staff = Warehouse "
        "staff) and print its API token. Standard output is the token alone, so "
        "TOKEN=$(manage.py create_api_user NAME --role staff) works; a token is printed "
        "only when it is created (first run, or --rotate-token). For a user who has a "
        "token already, it exits 1 (the changes made) unless --keep-token or --password "
        "says that no token is wanted."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=sorted(ROLE_GROUPS), required=True)
        parser.add_argument(
            "--password", help="also let the user log in to the admin with this password"
        )
        tokens = parser.add_mutually_exclusive_group()
        tokens.add_argument(
            "--rotate-token", action="store_true", help="replace the user's token with a new one"
        )
        tokens.add_argument(
            "--keep-token",
            action="store_true",
            help="an existing user: change the role (or password) and print no token",
        )

    def handle(self, *args, username, role, password, rotate_token, keep_token, **options):
        group_name = ROLE_GROUPS[role]
        try:
            group = Group.objects.get(name=group_name)
        except Group.DoesNotExist:
            raise CommandError(
                f"Group {group_name!r} is missing: run `manage.py migrate`."
            ) from None
        User = get_user_model()
        try:  # the admin's own rules: length, allowed characters, not blank
            username = User._meta.get_field(User.USERNAME_FIELD).clean(username, None)
        except ValidationError as exc:
            raise CommandError(f"Username {username!r}: {' '.join(exc.messages)}") from exc
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=username)
            if password:
                try:
                    validate_password(password, user)
                except ValidationError as exc:
                    raise CommandError(" ".join(exc.messages)) from exc
                user.set_password(password)
            elif created:
                user.set_unusable_password()
            # Exactly this role: no superuser powers or stray permissions left over.
            user.is_staff = True  # may log in to the admin, where its role applies
            user.is_superuser = False
            user.is_active = True
            user.save()
            user.groups.set([group])
            user.user_permissions.clear()
            if rotate_token:
                Token.objects.filter(user=user).delete()
            token, token_created = Token.objects.get_or_create(user=user)

        action = "Created" if created else "Updated"
        if token_created:
            self.stdout.write(token.key)
            self.stderr.write(
                f"{action} {username!r} as {group_name}. Its API token is above: store it "
                "now; it is printed only once."
            )
        elif keep_token or password:  # a role or a password was what was asked for
            self.stderr.write(
                f"{action} {username!r} as {group_name}"
                f"{' with the new password' if password else ''}; its existing token is "
                "unchanged (--rotate-token prints a new one)."
            )
        else:  # nothing on standard output: TOKEN=$(…) would be empty
            raise CommandError(
                f"{action} {username!r} as {group_name}, but printed no token: it has one "
                "already, printed when it was made. --rotate-token prints a new one (the old "
                "one stops working); --keep-token says you want none."
            )
