"""Writes for tokens and credit. Every credit movement goes through here.

Concurrency: charges are conditional UPDATEs with F() expressions, which are
atomic on PostgreSQL and SQLite alike; a row count of 0 means the credit or
the day's quota is not there. The ledger row is written in the same
transaction, so the balance always equals the sum of the ledger.
"""

import datetime
import hashlib
import secrets
import string

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from openscan_portal.exceptions import ApplicationError
from tokens.models import CreditLedgerEntry, DailyUsage, Token

KEY_PREFIX = "osp_"
_KEY_ALPHABET = string.ascii_letters + string.digits
_KEY_LENGTH = 40  # 40 base-62 characters: about 238 bits from the OS CSPRNG.


class InsufficientCreditError(ApplicationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=402, code="insufficient_credit")


def key_hash(key: str) -> str:
    """Return the stored form of a key (keys are high-entropy, so a fast hash suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + "".join(
        secrets.choice(_KEY_ALPHABET) for _ in range(_KEY_LENGTH)
    )


def _utc_today() -> datetime.date:
    return timezone.now().astimezone(datetime.UTC).date()


@transaction.atomic
def token_issue(
    *,
    kind: str = Token.Kind.PRIVATE,
    email: str = "",
    forename: str = "",
    surname: str = "",
    credit: int = 0,
    limit_filesize: int | None = None,
    limit_photos: int | None = None,
    user: AbstractBaseUser | None = None,
    created_by: AbstractBaseUser | None = None,
) -> tuple[Token, str]:
    """Create a private token and return it with its plaintext key (shown once)."""
    if kind != Token.Kind.PRIVATE:
        raise ApplicationError(
            "Only private tokens are issued; the public token is configured."
        )
    if credit < 0:
        raise ApplicationError("Credit cannot be negative.")
    key = _new_key()
    token = Token(
        kind=kind,
        key_hash=key_hash(key),
        key_hint=key[-4:],
        email=email,
        forename=forename,
        surname=surname,
        user=user,
        limit_filesize=(
            settings.OPENSCAN_PRIVATE_LIMIT_FILESIZE
            if limit_filesize is None
            else limit_filesize
        ),
        limit_photos=settings.OPENSCAN_PRIVATE_LIMIT_PHOTOS
        if limit_photos is None
        else limit_photos,
    )
    token.full_clean()
    token.save()
    if credit:
        credit_adjust(
            token=token, amount=credit, reason="Credit at issue", created_by=created_by
        )
        token.refresh_from_db(fields=["credit"])
    return token, key


def public_token_ensure(*, key: str | None = None) -> Token:
    """Create or update the public token so that ``key`` (default: the setting) opens it.

    Idempotent; the quota and limits follow the settings each time.
    """
    key = key if key is not None else settings.OPENSCAN_PUBLIC_TOKEN
    if not key:
        raise ApplicationError("Set OPENSCAN_PUBLIC_TOKEN to the public token's key.")
    defaults = {
        "key_hash": key_hash(key),
        "key_hint": key[-4:],
        "daily_quota": settings.OPENSCAN_PUBLIC_DAILY_QUOTA,
        "limit_filesize": settings.OPENSCAN_PUBLIC_LIMIT_FILESIZE,
        "limit_photos": settings.OPENSCAN_PUBLIC_LIMIT_PHOTOS,
    }
    try:
        token, _ = Token.objects.update_or_create(
            kind=Token.Kind.PUBLIC, defaults=defaults
        )
    except IntegrityError:  # Another process created it first.
        token = Token.objects.get(kind=Token.Kind.PUBLIC)
    return token


def token_regenerate(*, token: Token) -> str:
    """Give the token a new key; the old key stops working at once. Returns the new key."""
    if token.is_public:
        raise ApplicationError("The public token's key is set in the configuration.")
    key = _new_key()
    Token.objects.filter(pk=token.pk).update(key_hash=key_hash(key), key_hint=key[-4:])
    token.key_hash, token.key_hint = key_hash(key), key[-4:]
    return key


def token_touch(*, token: Token) -> None:
    """Record use at most once an hour so that reads stay cheap."""
    now = timezone.now()
    if token.last_used_at and now - token.last_used_at < datetime.timedelta(hours=1):
        return
    Token.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


def _ledger_add(
    *,
    token: Token,
    kind: str,
    amount: int,
    balance_after: int,
    reason: str,
    project_ref: str = "",
    created_by: AbstractBaseUser | None = None,
) -> CreditLedgerEntry:
    entry = CreditLedgerEntry(
        token=token,
        kind=kind,
        amount=amount,
        balance_after=balance_after,
        reason=reason[:255],
        project_ref=project_ref,
        created_by=created_by,
    )
    entry.save()
    return entry


@transaction.atomic
def credit_adjust(
    *,
    token: Token,
    amount: int,
    reason: str,
    created_by: AbstractBaseUser | None = None,
) -> CreditLedgerEntry:
    """Grant (amount > 0) or remove (amount < 0) credit with a reason; never below zero."""
    if token.is_public:
        raise ApplicationError("The public token has a daily quota, not a balance.")
    if amount == 0:
        raise ApplicationError("The amount must not be zero.")
    if not reason.strip():
        raise ApplicationError("Give a reason; it is written to the ledger.")
    updated = Token.objects.filter(pk=token.pk, credit__gte=-amount).update(
        credit=F("credit") + amount
    )
    if not updated:
        raise ApplicationError("That would make the balance negative.")
    balance = Token.objects.values_list("credit", flat=True).get(pk=token.pk)
    kind = (
        CreditLedgerEntry.Kind.GRANT if amount > 0 else CreditLedgerEntry.Kind.REMOVAL
    )
    return _ledger_add(
        token=token,
        kind=kind,
        amount=amount,
        balance_after=balance,
        reason=reason,
        created_by=created_by,
    )


def _usage_row(*, token: Token, day: datetime.date) -> DailyUsage:
    try:
        with transaction.atomic():
            row, _ = DailyUsage.objects.get_or_create(token=token, day=day)
    except IntegrityError:  # Lost the race to create today's row; it exists now.
        row = DailyUsage.objects.get(token=token, day=day)
    return row


@transaction.atomic
def credit_charge(
    *, token: Token, amount: int, reason: str, project_ref: str
) -> CreditLedgerEntry:
    """Take ``amount`` bytes of credit (private) or of today's quota (public).

    Raises:
        InsufficientCreditError: the balance or today's quota is too small; nothing changes.
    """
    if amount <= 0:
        raise ApplicationError("A charge must be positive.")
    if token.is_public:
        quota = token.daily_quota or 0
        row = _usage_row(token=token, day=_utc_today())
        updated = DailyUsage.objects.filter(pk=row.pk, used__lte=quota - amount).update(
            used=F("used") + amount
        )
        if not updated:
            left = max(
                0,
                quota
                - DailyUsage.objects.values_list("used", flat=True).get(pk=row.pk),
            )
            raise InsufficientCreditError(
                f"The public token's quota for today is used up: {left} bytes left of "
                f"{quota}, this project needs {amount}. Try again after midnight UTC, or "
                "register for a private token."
            )
        balance = DailyUsage.objects.values_list("used", flat=True).get(pk=row.pk)
    else:
        updated = Token.objects.filter(pk=token.pk, credit__gte=amount).update(
            credit=F("credit") - amount
        )
        if not updated:
            have = Token.objects.values_list("credit", flat=True).get(pk=token.pk)
            raise InsufficientCreditError(
                f"Not enough credit: this project needs {amount} bytes, the token has "
                f"{have}. Ask for more credit or upload a smaller set."
            )
        balance = Token.objects.values_list("credit", flat=True).get(pk=token.pk)
    return _ledger_add(
        token=token,
        kind=CreditLedgerEntry.Kind.CHARGE,
        amount=-amount,
        balance_after=balance,
        reason=reason,
        project_ref=project_ref,
    )


@transaction.atomic
def credit_refund(
    *,
    token: Token,
    amount: int,
    reason: str,
    project_ref: str,
    charged_on: datetime.date,
) -> CreditLedgerEntry:
    """Give back ``amount`` bytes charged on ``charged_on`` (the public quota of that day).

    The caller makes sure a charge is refunded at most once (it owns the charge).
    """
    if amount <= 0:
        raise ApplicationError("A refund must be positive.")
    if token.is_public:
        row = _usage_row(token=token, day=charged_on)
        DailyUsage.objects.filter(pk=row.pk, used__gte=amount).update(
            used=F("used") - amount
        )
        balance = DailyUsage.objects.values_list("used", flat=True).get(pk=row.pk)
    else:
        Token.objects.filter(pk=token.pk).update(credit=F("credit") + amount)
        balance = Token.objects.values_list("credit", flat=True).get(pk=token.pk)
    return _ledger_add(
        token=token,
        kind=CreditLedgerEntry.Kind.REFUND,
        amount=amount,
        balance_after=balance,
        reason=reason,
        project_ref=project_ref,
    )


@transaction.atomic
def token_request(*, email: str, forename: str, surname: str) -> Token | None:
    """Mail a new private token to ``email`` (the wire's requestToken).

    An address that already has a token gets a reminder instead of a second
    token, so nobody can farm sign-up credit or flood someone's inbox with keys.
    The mail is sent inside the transaction: if it fails, no token exists.
    """
    existing = Token.objects.filter(
        kind=Token.Kind.PRIVATE, email__iexact=email, is_active=True
    ).first()
    if existing is not None:
        send_mail(
            "Your OpenScan Portal token",
            f"Hello {existing.forename or forename},\n\nsomeone (hopefully you) asked for an "
            f"OpenScan Portal token for this address. You already have one: {existing.masked_key}.\n"
            "If you lost it, sign in to the portal and regenerate it on your token page.\n",
            None,
            [email],
        )
        return None
    token, key = token_issue(
        email=email,
        forename=forename,
        surname=surname,
        credit=settings.OPENSCAN_SIGNUP_CREDIT,
    )
    send_mail(
        "Your OpenScan Portal token",
        f"Hello {forename},\n\nhere is your private OpenScan Portal token:\n\n    {key}\n\n"
        "Paste it into your OpenScan rig's cloud settings, pass it to openscan-upload with "
        "--token (or OPENSCAN_TOKEN), or send it to the API as 'Authorization: Bearer <token>'.\n"
        f"It holds {token.credit / 1e9:.1f} GB of credit. Keep it secret: anyone with it can "
        "spend your credit.\n",
        None,
        [email],
    )
    return token


@transaction.atomic
def token_for_verified_user(*, user: AbstractBaseUser) -> tuple[Token, str | None]:
    """Give a verified account its private token; return it and its key when new.

    The same kind of token ``/requestToken`` mails out, with the sign-up credit.
    A token that an earlier ``/requestToken`` sent to this verified address (not
    yet tied to an account) is adopted instead of issuing a second one, so the
    sign-up credit is granted once per address. Idempotent: an account that
    has a token keeps it and gets ``None`` as the key.
    """
    existing = (
        Token.objects.filter(user=user, kind=Token.Kind.PRIVATE, is_active=True)
        .order_by("-created_at")
        .first()
    )
    if existing is not None:
        return existing, None
    email: str = user.email  # type: ignore[attr-defined]  # auth.User
    adopted = (
        Token.objects.select_for_update()
        .filter(
            kind=Token.Kind.PRIVATE,
            is_active=True,
            user__isnull=True,
            email__iexact=email,
        )
        .order_by("created_at")
        .first()
    )
    if adopted is not None:
        Token.objects.filter(pk=adopted.pk, user__isnull=True).update(user=user)
        adopted.user = user  # type: ignore[assignment]  # auth.User
        return adopted, None
    token, key = token_issue(
        user=user,
        email=email,
        forename=user.first_name,  # type: ignore[attr-defined]  # auth.User
        surname=user.last_name,  # type: ignore[attr-defined]  # auth.User
        credit=settings.OPENSCAN_SIGNUP_CREDIT,
    )
    return token, key
