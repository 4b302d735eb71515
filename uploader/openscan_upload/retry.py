"""Retry policy: which failures are worth another attempt, and how long to wait.

Only failures that can succeed on a second try are retried: connection errors,
timeouts, 408, 429 and 5xx. Everything else (400, 401, 403, 404, 409, 410, 413,
...) is returned to the caller at once, so a bad token never causes a retry storm.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import requests

RETRYABLE_STATUSES = frozenset({408, 429})
# A server asking for more than this is treated as asking for this much: a
# photo rig should not sit silent for hours because of one header.
MAX_RETRY_AFTER_SECONDS = 300.0

T = TypeVar("T")


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status may succeed when the same request is sent again."""
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait according to a `Retry-After` header (seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, min(when.timestamp() - current, MAX_RETRY_AFTER_SECONDS))


class RetryableHTTPError(Exception):
    """A retryable HTTP answer that was still failing after the last attempt."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code} from {response.url}")
        self.response = response


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter, honouring `Retry-After`.

    `attempts` counts every try, the first one included: 3 means one request and
    at most two retries.
    """

    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    on_retry: Callable[[int, float, str], None] | None = None

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based), without a server hint."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        # Full jitter keeps many rigs that lost the same Wi-Fi from coming back
        # in lockstep.
        return self.rng.uniform(ceiling / 2, ceiling)

    def call(self, send: Callable[[], requests.Response]) -> requests.Response:
        """Run `send` until it gives a non-retryable answer or attempts run out.

        Returns the first response whose status is not retryable (the caller
        decides what a 4xx means).

        Raises:
            RetryableHTTPError: the last attempt still answered 408/429/5xx.
            requests.ConnectionError, requests.Timeout: the last attempt could
                not reach the server.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                response = send()
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.attempts:
                    raise
                delay = self.backoff(attempt)
                reason = _describe_exception(exc)
            else:
                if not is_retryable_status(response.status_code):
                    return response
                if attempt >= self.attempts:
                    raise RetryableHTTPError(response)
                hinted = parse_retry_after(response.headers.get("Retry-After"))
                delay = hinted if hinted is not None else self.backoff(attempt)
                reason = f"HTTP {response.status_code}"
                response.close()
            if self.on_retry is not None:
                self.on_retry(attempt, delay, reason)
            self.sleep(delay)


def _describe_exception(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return "connection failed"
