"""Exit 0 when the PostgreSQL URL given as the first argument accepts connections."""

import sys

try:
    import psycopg

    with psycopg.connect(
        sys.argv[1].replace("postgres://", "postgresql://", 1), connect_timeout=3
    ):
        pass
except Exception:
    sys.exit(1)
