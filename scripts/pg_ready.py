"""Exit 0 when the PostgreSQL URL given as the first argument accepts connections."""

import sys

try:
    import psycopg

    with psycopg.connect(
        sys.argv[1].replace("postgres://", "postgresql://", 1), connect_timeout=3
    ):
        pass
except Exception:  # noqa: BLE001 - any failure means "not reachable"
    sys.exit(1)
