"""Formatting for the portal's pages (sizes in decimal units, as credit is counted)."""

from django import template

register = template.Library()

_UNITS = ("B", "kB", "MB", "GB", "TB")


def _size(value: float) -> str:
    size = abs(float(value))
    for unit in _UNITS:
        if size < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(size)} B"
            return f"{size:.1f} {unit}" if size < 100 else f"{size:.0f} {unit}"
        size /= 1000
    return f"{size} B"


@register.filter
def bytes_size(value: object) -> str:
    """1234567 -> '1.2 MB'."""
    try:
        return _size(float(value))  # type: ignore[arg-type]  # checked by the except
    except (TypeError, ValueError):
        return ""


@register.filter
def signed_bytes(value: object) -> str:
    """-1234567 -> '\u22121.2 MB' (a typographic minus), 5 -> '+5 B'."""
    try:
        number = float(value)  # type: ignore[arg-type]  # checked by the except
    except (TypeError, ValueError):
        return ""
    return ("\u2212" if number < 0 else "+") + _size(number)


@register.filter
def duration(value: object) -> str:
    """Seconds -> '3 min 20 s'."""
    try:
        seconds = int(float(value))  # type: ignore[arg-type]  # checked by the except
    except (TypeError, ValueError):
        return ""
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def thousands(value: object) -> str:
    """59971 -> '59,971'."""
    try:
        return f"{int(value):,}"  # type: ignore[call-overload]  # checked by the except
    except (TypeError, ValueError):
        return ""
