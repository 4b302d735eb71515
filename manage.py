#!/usr/bin/env python
import os
import secrets
import sys

# Commands that only run the pipeline on local files: they sign nothing and serve
# nothing, so a throwaway key lets them run from a checkout with no variables set.
# Everything else (runportal, check, migrate, gunicorn) still requires a real key.
_OFFLINE_COMMANDS = frozenset({"reconstruct"})


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openscan_portal.settings")
    if sys.argv[1:2] and sys.argv[1] in _OFFLINE_COMMANDS:
        os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
