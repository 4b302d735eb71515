"""Formatting for the portal's pages (sizes in decimal units, as credit is counted)."""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django import template
from django.utils import timezone

from openscan_portal.units import bytes_size as _size
from projects import selectors
from tokens.models import CreditLedgerEntry

register = template.Library()


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


@register.filter
def ago(value: object) -> str:
    """A moment for a list: 'just now', '5 min ago', '3 h ago', 'yesterday',
    then the date ('4 Mar', '4 Mar 2024' in another year). Never '0 minutes ago'."""
    if not isinstance(value, datetime):
        return ""
    now = timezone.now()
    seconds = (now - value).total_seconds()
    if seconds < 60:
        return "just now"  # also a clock a little ahead of ours
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 24 * 3600:
        return f"{int(seconds // 3600)} h ago"
    local = timezone.localtime(value)
    if timezone.localtime(now).date() - local.date() == timedelta(days=1):
        return "yesterday"
    if local.year == timezone.localtime(now).year:
        return f"{local.day} {local:%b}"
    return f"{local.day} {local:%b %Y}"


@register.simple_tag
def live_project_ids(entries: Iterable[CreditLedgerEntry]) -> set[str]:
    """The project references in ``entries`` whose project still exists (deleted
    projects are named in the ledger but have no page to link to)."""
    return selectors.project_ids_existing(
        refs={(e.token_id, e.project_ref) for e in entries if e.project_ref}
    )
