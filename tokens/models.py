from django.conf import settings
from django.db import models

from openscan_portal.models import TimeStampedModel


class Token(TimeStampedModel):
    """An API credential with its credit and limits.

    Only the sha256 of the key is stored; ``key_hint`` keeps the last
    characters so people can tell their tokens apart.
    """

    class Kind(models.TextChoices):
        PUBLIC = "public", "Public (shared, daily quota)"
        PRIVATE = "private", "Private"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PRIVATE)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_hint = models.CharField(max_length=8, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tokens",
    )
    forename = models.CharField(max_length=100, blank=True)
    surname = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True, db_index=True)
    # Cached balance in bytes; always equal to the sum of the ledger rows.
    credit = models.BigIntegerField(default=0, editable=False)
    limit_filesize = models.BigIntegerField(help_text="Largest project (zip) in bytes.")
    limit_photos = models.PositiveIntegerField(help_text="Most photos in one project.")
    daily_quota = models.BigIntegerField(
        null=True, blank=True, help_text="Public token only: bytes per UTC day."
    )
    is_active = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(credit__gte=0), name="token_credit_not_negative"
            ),
            models.UniqueConstraint(
                fields=["kind"],
                condition=models.Q(kind="public"),
                name="token_single_public",
            ),
        ]

    def __str__(self) -> str:
        owner = (
            f"{self.forename} {self.surname} <{self.email}>"
            if self.email
            else self.kind
        )
        return f"{self.masked_key} ({owner})"

    @property
    def masked_key(self) -> str:
        return f"osp_…{self.key_hint}"

    @property
    def is_public(self) -> bool:
        return self.kind == self.Kind.PUBLIC


class CreditLedgerEntry(models.Model):
    """One credit movement; rows are only ever added, never changed or deleted."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        REMOVAL = "removal", "Removal"
        CHARGE = "charge", "Charge"
        REFUND = "refund", "Refund"

    token = models.ForeignKey(Token, on_delete=models.PROTECT, related_name="ledger")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Signed bytes: negative for charges and removals.
    amount = models.BigIntegerField()
    # Private tokens: the balance right after this row. Public: today's usage after it.
    balance_after = models.BigIntegerField()
    reason = models.CharField(max_length=255)
    project_ref = models.CharField(max_length=64, blank=True, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit ledger entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d} B ({self.reason})"


class DailyUsage(models.Model):
    """Bytes charged to a token on one UTC day (the public token's quota)."""

    token = models.ForeignKey(
        Token, on_delete=models.CASCADE, related_name="daily_usage"
    )
    day = models.DateField()
    used = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["token", "day"], name="daily_usage_token_day"
            ),
            models.CheckConstraint(
                condition=models.Q(used__gte=0), name="daily_usage_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.token_id} {self.day}: {self.used} B"


class SignupGrant(models.Model):
    """The one token and sign-up credit an e-mail address ever gets from /requestToken.

    The unique address is the guard: concurrent requests for one address insert
    one row and the rest fail in the database, whatever Python checked first.
    """

    email = models.CharField(max_length=254, unique=True)  # Lower-cased.
    token = models.ForeignKey(
        Token, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email


class RateCounter(models.Model):
    """Events counted per key and fixed window, incremented
    with a conditional UPDATE."""

    key = models.CharField(max_length=200)
    window_start = models.BigIntegerField()  # Unix seconds.
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key", "window_start"], name="rate_counter_key_window"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key}@{self.window_start}: {self.count}"
