"""Reads for tokens and credit."""

import datetime

from django.db.models import QuerySet, Sum

from openscan_portal.clock import utc_day
from tokens.models import CreditLedgerEntry, DailyUsage, Token
from tokens.services import key_hash


def token_get_by_key(*, key: str) -> Token | None:
    """Return the active token whose key this is, or None."""
    if not key or len(key) > 200:
        return None
    return Token.objects.filter(key_hash=key_hash(key), is_active=True).first()


def token_usage_on(*, token: Token, day: datetime.date) -> int:
    """Bytes charged to ``token`` on the UTC day ``day``."""
    used = (
        DailyUsage.objects.filter(token=token, day=day)
        .values_list("used", flat=True)
        .first()
    )
    return used or 0


def token_usage_today(*, token: Token) -> int:
    return token_usage_on(token=token, day=utc_day())


def token_credit_available(*, token: Token) -> int:
    """Bytes the token can still spend now: its balance, or
    what is left of today's quota."""
    if token.is_public:
        return max(0, (token.daily_quota or 0) - token_usage_today(token=token))
    return Token.objects.values_list("credit", flat=True).get(pk=token.pk)


def ledger_list(*, token: Token) -> QuerySet[CreditLedgerEntry]:
    return CreditLedgerEntry.objects.filter(token=token).order_by("-created_at", "-id")


def ledger_sum(*, token: Token) -> int:
    """Sum of the token's ledger, which must equal its balance (private tokens)."""
    return (
        CreditLedgerEntry.objects.filter(token=token).aggregate(s=Sum("amount"))["s"]
        or 0
    )


def token_for_user(*, user: object) -> Token | None:
    """The active private token of a signed-in person, if they have one."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "pk", None):
        return None
    return (
        Token.objects.filter(user=user, kind=Token.Kind.PRIVATE, is_active=True)
        .order_by("-created_at")
        .first()
    )
