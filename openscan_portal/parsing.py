"""Strict parsing of numbers that arrive as text (query strings, headers, JSON)."""

import re
from typing import Any

from rest_framework import serializers

from openscan_portal.exceptions import ApplicationError

# ASCII only: str.isdigit() accepts "²" and int() accepts "٣", neither is a number here.
_ASCII_INT = re.compile(r"[0-9]{1,18}", re.ASCII)


def ascii_int(raw: str | None) -> int | None:
    """The value of ``raw`` if it is 1 to 18 ASCII digits
    (blanks around allowed), else None."""
    if raw is None:
        return None
    text = raw.strip(" \t")
    return int(text) if _ASCII_INT.fullmatch(text) else None


def header_int(
    raw: str | None, *, message: str, status: int = 400, code: str = "invalid"
) -> int:
    """A byte count or offset from a header (Content-Length, Upload-Offset).

    Raises:
        ApplicationError: with ``message`` when ``raw`` is not ASCII digits.
    """
    value = ascii_int(raw)
    if value is None:
        raise ApplicationError(message, status=status, code=code)
    return value


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that takes JSON integers or ASCII-digit strings, nothing else."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int):
            value = data
        else:
            parsed = ascii_int(data) if isinstance(data, str) else None
            if parsed is None:
                self.fail("invalid")
            value = parsed
        self.run_validators(value)
        return value
