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
import time

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from openscan_portal.clock import utc_day
from openscan_portal.exceptions import ApplicationError
from tokens.models import (
    CreditLedgerEntry,
    DailyUsage,
    RateCounter,
    SignupGrant,
    Token,
)

KEY_PREFIX = "osp_"
_KEY_ALPHABET = string.ascii_letters + string.digits
_KEY_LENGTH = 40  # 40 base-62 characters: about 238 bits from the OS CSPRNG.
# Clients check a key's length (at least 15) before saving it; keep a margin.
PUBLIC_KEY_MIN_LENGTH = 20


class InsufficientCreditError(ApplicationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=402, code="insufficient_credit")


# The session key under which a freshly issued token key waits to be shown once.
NEW_KEY_SESSION = "tokens.new_key"


def key_hash(key: str) -> str:
    """Return the stored form of a key (keys are high-entropy, so a fast hash
    suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + "".join(
        secrets.choice(_KEY_ALPHABET) for _ in range(_KEY_LENGTH)
    )


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
    """Create or update the public token so that ``key``
    (default: the setting) opens it.

    Idempotent; the quota and limits follow the settings each time.
    """
    key = key if key is not None else settings.OPENSCAN_PUBLIC_TOKEN
    if len(key) < PUBLIC_KEY_MIN_LENGTH:
        raise ApplicationError(
            f"Set OPENSCAN_PUBLIC_TOKEN to a key of at least {PUBLIC_KEY_MIN_LENGTH} "
            "characters: OpenScan clients refuse shorter keys before saving them."
        )
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
    """Give the token a new key; the old key stops working
    at once. Returns the new key."""
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
    """Grant (amount > 0) or remove (amount < 0) credit with
    a reason; never below zero."""
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
        InsufficientCreditError: the balance or today's quota is too small; nothing
        changes.
    """
    if amount <= 0:
        raise ApplicationError("A charge must be positive.")
    if token.is_public:
        quota = token.daily_quota or 0
        row = _usage_row(token=token, day=utc_day())
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
                f"The public token's quota for today is used up: {left} bytes left "
                f"of {quota}, this project needs {amount}. Try again after midnight "
                "UTC, or register for a private token."
            )
        balance = DailyUsage.objects.values_list("used", flat=True).get(pk=row.pk)
    else:
        updated = Token.objects.filter(pk=token.pk, credit__gte=amount).update(
            credit=F("credit") - amount
        )
        if not updated:
            have = Token.objects.values_list("credit", flat=True).get(pk=token.pk)
            raise InsufficientCreditError(
                f"Not enough credit: this project needs {amount} bytes, the token "
                f"has {have}. Ask for more credit or upload a smaller set."
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
    """Give back ``amount`` bytes charged on ``charged_on``
    (the public quota of that day).

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


def rate_consume(*, key: str, limit: int, window_seconds: int) -> bool:
    """Count one event for ``key`` in the current fixed
    window; False when over ``limit``.

    A database row and a conditional UPDATE, so concurrent requests on any
    number of processes can never pass the limit together.
    """
    window = int(time.time() // window_seconds) * window_seconds
    # Windows that ended are of no use; dropping them here keeps the table small.
    RateCounter.objects.filter(key=key, window_start__lt=window).delete()
    try:
        with transaction.atomic():
            row, _ = RateCounter.objects.get_or_create(key=key, window_start=window)
    except IntegrityError:  # Created by a concurrent request: it exists now.
        row = RateCounter.objects.get(key=key, window_start=window)
    return bool(
        RateCounter.objects.filter(pk=row.pk, count__lt=limit).update(
            count=F("count") + 1
        )
    )


def _token_mail_allow(*, email: str, ip: str) -> None:
    per_address = settings.OPENSCAN_TOKEN_MAILS_PER_ADDRESS
    per_ip = settings.OPENSCAN_TOKEN_MAILS_PER_IP
    if not rate_consume(
        key=f"token-mail:address:{email}", limit=per_address, window_seconds=86_400
    ):
        raise ApplicationError(
            f"This address was sent {per_address} token mails today, the most per "
            "day. Look for them (and in the spam folder) or try again tomorrow.",
            status=429,
            code="mail_limit",
        )
    if ip and not rate_consume(
        key=f"token-mail:ip:{ip}", limit=per_ip, window_seconds=3600
    ):
        raise ApplicationError(
            f"{per_ip} token mails were requested from your network in the last "
            "hour, the most per hour. Try again later.",
            status=429,
            code="mail_limit",
        )


def _grant_claim(*, email: str) -> SignupGrant | None:
    """Record the address's one sign-up grant; None when it was granted before."""
    try:
        with transaction.atomic():
            return SignupGrant.objects.create(email=email.lower())
    except IntegrityError:
        return None


def _reminder_send(*, email: str, forename: str) -> None:
    grant = (
        SignupGrant.objects.select_related("token").filter(email=email.lower()).first()
    )
    token = grant.token if grant is not None else None
    token = token or (
        Token.objects.filter(kind=Token.Kind.PRIVATE, email__iexact=email)
        .order_by("created_at")
        .first()
    )
    held = (
        f"You already have one: {token.masked_key}.\n"
        if token is not None
        else "This address already received one.\n"
    )
    send_mail(
        "Your OpenScan Portal token",
        f"Hello {forename},\n\nsomeone (hopefully you) asked for an OpenScan Portal "
        f"token for this address. {held}If you lost it, sign in to the portal and "
        "regenerate it on your token page.\n",
        None,
        [email],
    )


@transaction.atomic
def token_request(
    *, email: str, forename: str, surname: str, ip: str = ""
) -> Token | None:
    """Mail a new private token to ``email`` (the wire's requestToken).

    An address gets one token and one sign-up grant, ever (``SignupGrant``'s
    unique address decides, also under concurrent requests); later requests
    get a reminder instead. Mails are limited per address and per client
    address (429). The mail is sent inside the transaction: if it fails, no
    token exists.
    """
    _token_mail_allow(email=email.lower(), ip=ip)
    grant = _grant_claim(email=email)
    if grant is not None:
        existing = (
            Token.objects.filter(kind=Token.Kind.PRIVATE, email__iexact=email)
            .order_by("created_at")
            .first()
        )
        if existing is not None:  # Issued by an admin before any request.
            grant.token = existing
            grant.save(update_fields=["token"])
            grant = None
    if grant is None:
        _reminder_send(email=email, forename=forename)
        return None
    token, key = token_issue(
        email=email,
        forename=forename,
        surname=surname,
        credit=settings.OPENSCAN_SIGNUP_CREDIT,
    )
    grant.token = token
    grant.save(update_fields=["token"])
    send_mail(
        "Your OpenScan Portal token",
        f"Hello {forename},\n\nhere is your private OpenScan Portal token:\n\n    "
        f"{key}\n\nPaste it into your OpenScan rig's cloud settings, pass it to "
        "openscan-upload with --token (or OPENSCAN_TOKEN), or send it to the API as "
        f"'Authorization: Bearer <token>'.\nIt holds {token.credit / 1e9:.1f} GB of "
        "credit. Keep it secret: anyone with it can spend your credit.\n",
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
    grant = _grant_claim(email=email)
    token, key = token_issue(
        user=user,
        email=email,
        forename=user.first_name,  # type: ignore[attr-defined]  # auth.User
        surname=user.last_name,  # type: ignore[attr-defined]  # auth.User
        # The address's one sign-up grant may have gone to a token it no longer has.
        credit=settings.OPENSCAN_SIGNUP_CREDIT if grant is not None else 0,
    )
    if grant is not None:
        grant.token = token
        grant.save(update_fields=["token"])
    return token, key
