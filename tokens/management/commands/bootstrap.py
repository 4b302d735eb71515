import secrets
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from tokens.services import public_token_ensure


class Command(BaseCommand):
    help = (
        "Idempotent set-up: the public token, the background schedules, and (with "
        "--admin) an admin account whose password is printed once."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--admin", default="", help="Create this admin user if missing."
        )
        parser.add_argument("--admin-email", default="admin@localhost")

    def handle(self, *args: Any, **options: Any) -> None:
        token = public_token_ensure()
        if options["verbosity"]:
            # The public key is shared by design: print it so rigs can be set up.
            self.stdout.write(
                f"Public token: {settings.OPENSCAN_PUBLIC_TOKEN} (shared by everyone), "
                f"daily quota {token.daily_quota} bytes."
            )
        call_command("setup_schedules", verbosity=options["verbosity"])
        username = options["admin"]
        if not username:
            return
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            self.stdout.write(
                f"Admin account '{username}' exists (password unchanged)."
            )
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(
            username=username, email=options["admin_email"], password=password
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin account created: user '{username}', password '{password}' "
                "(shown once; change it in the admin)."
            )
        )
