from typing import Any

from django.core.management.base import BaseCommand

from projects.services.schedules import schedules_ensure


class Command(BaseCommand):
    help = (
        "Create or update the periodic background tasks (idempotent; run at every "
        "start)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        names = schedules_ensure()
        if options["verbosity"]:
            self.stdout.write(
                f"Schedules ready: {', '.join(names) if names else 'none'}."
            )
