"""Exit codes: stable, listed in ``EXIT_CODES`` (``--help`` shows them)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_VALIDATION = 3
EXIT_AUTH = 4
EXIT_NETWORK = 5
EXIT_REJECTED = 6
EXIT_PROCESSING_FAILED = 7
EXIT_PARTIAL = 8
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success: everything asked for happened",
    EXIT_INTERNAL: "internal error (a bug: please report it)",
    EXIT_USAGE: "usage error (bad option, missing server or token, not a folder)",
    EXIT_VALIDATION: "validation failed (see the summary and the report file)",
    EXIT_AUTH: "authentication failed (token refused)",
    EXIT_NETWORK: "network failure after retries (rerun to resume)",
    EXIT_REJECTED: "the server rejected a request (limits, credit, missing parts...)",
    EXIT_PROCESSING_FAILED: "processing failed on the server",
    EXIT_PARTIAL: "partial success (e.g. --skip-bad left photos out)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); rerun the same command to resume",
}


class ExitError(Exception):
    """Stop with an exit code and a message saying what to do next."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
