"""Retention: abandoned uploads and old results are removed; the ledger never is."""

import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from projects.models import Project
from projects.services.projects import project_refund
from projects.services.uploads import upload_discard
from projects.storage import storage_delete_tree
from tokens.models import Token


def _expire(project_id: object, *, from_status: str, refund: bool) -> bool:
    with transaction.atomic():
        locked = (
            Project.objects.select_for_update()
            .select_related("token")
            .filter(pk=project_id)
            .first()
        )
        if locked is None or locked.status != from_status:
            return False  # Another sweep (or the owner) got there first.
        if refund:
            project_refund(
                project=locked,
                reason=f"Project '{locked.name}' expired before it was started",
            )
        upload_discard(project=locked)
        prefix = locked.storage_prefix
        transaction.on_commit(lambda: storage_delete_tree(prefix))
        locked.status = Project.Status.EXPIRED
        locked.input_path = locked.result_path = ""
        locked.share_key = ""
        locked.save()
    return True


def projects_expire(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Expire projects never started within the grace
    period, and results past retention.

    Idempotent and safe to run twice at once: each project changes under a row
    lock and only from the status it was found in.
    """
    now = now or timezone.now()
    abandoned_before = now - datetime.timedelta(
        hours=settings.OPENSCAN_UNSTARTED_GRACE_HOURS
    )
    abandoned = Project.objects.filter(
        status=Project.Status.CREATED, updated_at__lt=abandoned_before
    )
    unstarted = sum(
        _expire(pk, from_status=Project.Status.CREATED, refund=True)
        for pk in abandoned.values_list("pk", flat=True)[:500]
    )
    old = 0
    for kind, days in (
        (Token.Kind.PUBLIC, settings.OPENSCAN_RETENTION_DAYS_PUBLIC),
        (Token.Kind.PRIVATE, settings.OPENSCAN_RETENTION_DAYS_PRIVATE),
    ):
        cutoff = now - datetime.timedelta(days=days)
        for status in (
            Project.Status.DONE,
            Project.Status.FAILED,
            Project.Status.CANCELLED,
        ):
            ids = Project.objects.filter(
                token__kind=kind, status=status, finished_at__lt=cutoff
            ).values_list("pk", flat=True)
            old += sum(
                _expire(pk, from_status=status, refund=False) for pk in ids[:500]
            )
    return {"unstarted": unstarted, "results": old}
