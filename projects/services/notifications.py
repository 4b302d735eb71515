"""E-mail alerts for private tokens when a project finishes or fails.

Sent by a django-q2 task after the transaction commits. An SMTP server that
is down does not fail anything: the task schedules itself again with
exponential backoff, and the project page always has the download anyway.
"""

import datetime
import logging
import smtplib

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

from openscan_portal.exceptions import ApplicationError
from openscan_portal.public_url import public_url
from projects import selectors
from projects.models import Project

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6


def notification_enqueue(*, project: Project) -> bool:
    """Queue the alert for a finished or failed private project after commit.

    False when none is due.
    """
    if project.token.is_public or not project.token.email:
        return False
    if project.status not in {Project.Status.DONE, Project.Status.FAILED}:
        return False
    project_id = str(project.id)
    transaction.on_commit(
        lambda: async_task("projects.tasks.project_notify", project_id, 1)
    )
    return True


def notification_resend(*, project: Project) -> None:
    """Send the alert again at the owner's request (the API and the project page)."""
    if project.token.is_public:
        raise ApplicationError(
            "Projects of the public token get no e-mail; use the download link."
        )
    if not notification_enqueue(project=project):
        raise ApplicationError(
            "The e-mail is sent when the project has finished or failed.", status=409
        )


def notification_message(*, project: Project) -> EmailMultiAlternatives:
    # The worker has no request: the configured public URL, else the address the
    # project was created or queued through.
    def link(path: str) -> str:
        return public_url(None, path, recorded=project.site_url)

    downloads = selectors.project_downloads(project=project, base=link)
    context = {
        "project": project,
        "done": project.status == Project.Status.DONE,
        "page_url": link(f"/projects/{project.id}/"),
        "download_url": selectors.downloads_archive_url(downloads),
        "downloads": downloads,
        "stats": project.progress.get("stats", {}),
        "refunded": project.progress.get("refunded", False),
        "forename": project.token.forename,
    }
    verb = "is ready" if context["done"] else "could not be processed"
    message = EmailMultiAlternatives(
        subject=f"Your 3D model '{project.name.removesuffix('.zip')}' {verb}",
        body=render_to_string("projects/email/finished.txt", context),
        to=[project.token.email],
    )
    message.attach_alternative(
        render_to_string("projects/email/finished.html", context), "text/html"
    )
    return message


def notification_send(*, project_id: str, attempt: int) -> str:
    """Send the alert; on an SMTP failure schedule attempt
    ``attempt + 1`` with backoff."""
    project = Project.objects.select_related("token").filter(pk=project_id).first()
    if project is None or project.status not in {
        Project.Status.DONE,
        Project.Status.FAILED,
    }:
        return "skipped"
    try:
        notification_message(project=project).send()
    except (smtplib.SMTPException, OSError) as exc:
        if attempt >= MAX_ATTEMPTS:
            logger.error(
                "giving up e-mail for project %s after %s attempts: %s",
                project_id,
                attempt,
                exc,
            )
            return "gave up"
        delay = settings.OPENSCAN_MAIL_RETRY_SECONDS * 2 ** (attempt - 1)
        logger.warning(
            "e-mail for project %s failed (%s); retry in %s s", project_id, exc, delay
        )
        schedule(
            "projects.tasks.project_notify",
            project_id,
            attempt + 1,
            name=f"openscan-mail:{project_id}:{attempt + 1}",
            schedule_type=Schedule.ONCE,
            next_run=timezone.now() + datetime.timedelta(seconds=delay),
        )
        return f"retry {attempt + 1} in {delay} s"
    Project.objects.filter(pk=project.pk).update(
        notified_at=timezone.now(), notify_count=F("notify_count") + 1
    )
    return "sent"
