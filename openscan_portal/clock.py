"""The one definition of "today" that credits, quotas and refunds agree on: UTC."""

import datetime

from django.utils import timezone


def utc_day(moment: datetime.datetime | None = None) -> datetime.date:
    """The UTC calendar day of ``moment`` (default: now)."""
    return (moment or timezone.now()).astimezone(datetime.UTC).date()
