from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from openscan_portal.exceptions import ApplicationError
from tokens.services import token_issue


class Command(BaseCommand):
    help = "Create a private token and print only its key (for admins and scripts)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--kind", choices=["private"], default="private")
        parser.add_argument("--email", required=True)
        parser.add_argument("--forename", required=True)
        parser.add_argument("--surname", required=True)
        parser.add_argument(
            "--credit", type=int, required=True, help="Bytes of credit."
        )
        parser.add_argument(
            "--limit-filesize", type=int, default=None, help="Bytes per project."
        )
        parser.add_argument(
            "--limit-photos", type=int, default=None, help="Photos per project."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            _, key = token_issue(
                kind=options["kind"],
                email=options["email"],
                forename=options["forename"],
                surname=options["surname"],
                credit=options["credit"],
                limit_filesize=options["limit_filesize"],
                limit_photos=options["limit_photos"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from exc
        self.stdout.write(key)
