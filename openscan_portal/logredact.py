"""Keep token values out of every log line: query strings, headers, messages.

The wire protocol carries its credential as ``token=`` in the query string, so
a plain access log would store every key. One filter serves Django's logging
(settings.LOGGING) and gunicorn's access and error logs (gunicorn.conf.py).
"""

import logging
import re

REDACTED = "[redacted]"
_PATTERNS = (
    # token=<value> in a query string or form body, whatever the key's case.
    (re.compile(r"(?i)(\btoken=)[^&\s\"'<>]+"), rf"\g<1>{REDACTED}"),
    # Authorization (and Proxy-Authorization) header values.
    (
        re.compile(
            r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|token|basic)\s+)[^\s\"',)]+"
        ),
        rf"\g<1>{REDACTED}",
    ),
    # A key written anywhere else (an error message, a repr).
    (re.compile(r"\bosp_[A-Za-z0-9_-]{4,}"), f"osp_{REDACTED}"),
)


def redact(text: str) -> str:
    """``text`` with every token value replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactTokens(logging.Filter):
    """Rewrites a record's final message (and traceback) with the tokens removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
