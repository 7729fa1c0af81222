"""`python manage.py create_api_token USER [--name NAME]`: a token for the JSON API.

Prints the raw token once, alone on stdout; only its digest is stored. Exit status 2 for an unknown user or a
bad name, as the `sweep` command does for bad input.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from sweeps.services import ServiceError
from sweeps.services.tokens import token_create
from sweeps.services.users import user_named


class Command(BaseCommand):
    help = "Create an API token for a user and print it (once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("user", help="username of the token's owner")
        parser.add_argument("--name", default="cli", help='what the token is for, e.g. "ci" (default: cli)')

    def handle(self, *args, **options) -> None:
        try:
            user = user_named(options["user"])
            token, raw = token_create(user=user, name=options["name"])
        except ServiceError as e:
            raise CommandError(str(e), returncode=2) from None
        # The token alone on stdout, so `TOKEN=$(manage.py create_api_token alice --name ci)`
        # captures it; the note goes to stderr.
        self.stdout.write(raw)
        self.stderr.write(
            f"API token {token.name!r} for {user.username}: copy it now, it will not be shown again.\n"
            "Send it as the header  Authorization: Bearer <token>",
            style_func=self.style.WARNING,
        )
        if not user.is_active:
            self.stderr.write(f"{user.username} is inactive: the token works once the user is active again.")
