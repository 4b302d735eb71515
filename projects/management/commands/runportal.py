import os
import signal
import subprocess
import sys
import time
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the portal (gunicorn) with its django-q2 worker until Ctrl-C."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument(
            "--no-worker", action="store_true", help="Serve only the web part."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        env = {**os.environ, "PORT": str(options["port"]), "HOST": options["host"]}
        config = str(settings.BASE_DIR / "gunicorn.conf.py")
        commands = [
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                config,
                "openscan_portal.wsgi:application",
            ]
        ]
        if not options["no_worker"]:
            commands.append(
                [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"]
            )
        children = [subprocess.Popen(cmd, env=env) for cmd in commands]
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(
            self.style.SUCCESS(
                f"OpenScan Portal on {url} (worker: {len(children) > 1}). Ctrl-C stops."
            )
        )
        self.stdout.write(mail_links_note(url))

        def stop(_signum: int, _frame: object) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
        finally:
            stop(signal.SIGTERM, None)
            deadline = time.monotonic() + 40
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
        failed = [
            c.returncode
            for c in children
            if c.returncode not in (0, -signal.SIGTERM, None)
        ]
        if failed:
            raise SystemExit(1)


def mail_links_note(url: str) -> str:
    """Where links in e-mails lead, said at start-up: a wrong base is otherwise
    noticed only when a mail arrives."""
    if settings.OPENSCAN_PUBLIC_URL:
        return (
            f"Links in e-mails: {settings.OPENSCAN_PUBLIC_URL} (OPENSCAN_PUBLIC_URL)."
        )
    return (
        "Links in e-mails: the address each project was created through, e.g. "
        f"{url} (set OPENSCAN_PUBLIC_URL to fix one)."
    )
