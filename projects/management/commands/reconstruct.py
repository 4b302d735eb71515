from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from projects.pipeline.__main__ import main as pipeline_main


class Command(BaseCommand):
    help = (
        "Reconstruct a folder or zip of photos locally: python manage.py reconstruct "
        "IMAGES --out OUT_DIR"
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("input", help="folder of photos or a zip of them")
        parser.add_argument("--out", required=True, help="folder for the model files")
        parser.add_argument(
            "--preset", choices=["fast", "balanced", "quality"], default="balanced"
        )
        parser.add_argument("--time-limit", type=float, default=None, help="seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        argv = [options["input"], options["out"], "--preset", options["preset"]]
        if options["time_limit"]:
            argv += ["--time-limit", str(options["time_limit"])]
        if pipeline_main(argv) != 0:
            raise CommandError(
                "The reconstruction failed (the reason is printed above)."
            )
