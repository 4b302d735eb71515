"""Recovery, retention, alerts and fairness around a
project's life (no engine needed)."""

import datetime
import socket
import threading

import pytest
from aiosmtpd.controller import Controller
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connections
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from openscan_portal.exceptions import ApplicationError
from projects.models import Project
from projects.services import jobs, notifications, project_create, retention
from tokens import throttles
from tokens.models import CreditLedgerEntry

pytestmark = pytest.mark.django_db
GB = 1_000_000_000


def _project(token, status: str, **fields) -> Project:
    project = project_create(
        token=token,
        name=f"{status}-{timezone.now().timestamp()}.zip",
        photos=3,
        parts=1,
        filesize=1000,
    )
    Project.objects.filter(pk=project.pk).update(status=status, **fields)
    project.refresh_from_db()
    return project


# --- sweeper ---------------------------------------------------------------


def test_sweeper_requeues_a_project_whose_heartbeat_stopped(private_token):
    stale = timezone.now() - datetime.timedelta(minutes=5)
    project = _project(private_token[0], "processing", heartbeat_at=stale, attempts=1)
    fresh = _project(
        private_token[0], "processing", heartbeat_at=timezone.now(), attempts=1
    )

    result = jobs.jobs_sweep()

    project.refresh_from_db()
    fresh.refresh_from_db()
    assert result["requeued"] == 1
    assert project.status == "queued"
    assert fresh.status == "processing"


def test_sweeper_fails_a_project_after_max_attempts_with_a_reason_and_a_refund(
    private_token,
):
    token = private_token[0]
    stale = timezone.now() - datetime.timedelta(minutes=5)
    project = _project(token, "processing", heartbeat_at=stale, attempts=3)

    assert jobs.jobs_sweep()["failed"] == 1
    assert jobs.jobs_sweep()["failed"] == 0  # a second sweep changes nothing

    project.refresh_from_db()
    token.refresh_from_db()
    assert project.status == "failed"
    assert project.error_code == "worker_died"
    assert "stopped 3 times" in project.error
    assert token.credit == 10 * GB
    assert CreditLedgerEntry.objects.filter(token=token, kind="refund").count() == 1


def test_claim_takes_private_projects_before_public_ones_queued_earlier(
    private_token, public_token
):
    early = timezone.now() - datetime.timedelta(hours=1)
    public = _project(public_token, "queued", queued_at=early)
    private = _project(private_token[0], "queued", queued_at=timezone.now())

    first = jobs.job_claim_next()
    second = jobs.job_claim_next()

    assert (first.pk, second.pk) == (private.pk, public.pk)
    assert first.status == "processing"
    assert first.attempts == 1
    assert jobs.job_claim_next() is None


def test_a_claimed_project_cannot_be_claimed_twice(private_token):
    _project(private_token[0], "queued", queued_at=timezone.now())
    claims = [jobs.job_claim_next() for _ in range(3)]
    assert sum(c is not None for c in claims) == 1


def test_cancel_a_queued_project_refunds_and_a_done_one_is_refused(private_token):
    token = private_token[0]
    queued = _project(token, "queued", queued_at=timezone.now())
    done = _project(token, "done")
    from projects.services import project_cancel

    assert project_cancel(project=queued).status == "cancelled"
    with pytest.raises(ApplicationError, match="only queued or running"):
        project_cancel(project=done)
    token.refresh_from_db()
    assert (
        token.credit == 10 * GB - 1000
    )  # the done project stays paid, the cancelled one is back


# --- retention ---------------------------------------------------------------


def test_unstarted_projects_expire_after_the_grace_period_with_a_refund(
    private_token, django_capture_on_commit_callbacks
):
    token = private_token[0]
    old = _project(
        token, "created", updated_at=timezone.now() - datetime.timedelta(hours=25)
    )
    recent = _project(token, "created")
    default_storage.save(f"{old.storage_prefix}/upload/0000-x.bin", ContentFile(b"abc"))

    with django_capture_on_commit_callbacks(execute=True):
        first = retention.projects_expire()
        second = retention.projects_expire()

    old.refresh_from_db()
    recent.refresh_from_db()
    token.refresh_from_db()
    assert first == {"unstarted": 1, "results": 0}
    assert second == {
        "unstarted": 0,
        "results": 0,
    }
    assert old.status == "expired"
    assert recent.status == "created"
    assert not default_storage.exists(f"{old.storage_prefix}/upload/0000-x.bin")
    assert token.credit == 10 * GB - 1000
    assert (
        CreditLedgerEntry.objects.filter(
            token=token, kind="refund", project_ref=str(old.pk)
        ).count()
        == 1
    )


def test_results_expire_after_retention_per_token_kind(private_token, public_token):
    now = timezone.now()
    public_old = _project(
        public_token,
        "done",
        finished_at=now - datetime.timedelta(days=31),
        result_path="x",
    )
    private_31 = _project(
        private_token[0],
        "done",
        finished_at=now - datetime.timedelta(days=31),
        result_path="y",
    )
    private_old = _project(
        private_token[0], "failed", finished_at=now - datetime.timedelta(days=366)
    )
    ledger_rows = CreditLedgerEntry.objects.count()

    assert retention.projects_expire() == {"unstarted": 0, "results": 2}

    statuses = {p.pk: p.status for p in Project.objects.all()}
    assert statuses[public_old.pk] == "expired"
    assert statuses[private_old.pk] == "expired"
    assert statuses[private_31.pk] == "done"
    assert CreditLedgerEntry.objects.count() == ledger_rows


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_expiry_runs_at_once_expire_each_project_once(private_token):
    token = private_token[0]
    for _ in range(5):
        _project(
            token, "created", updated_at=timezone.now() - datetime.timedelta(days=2)
        )
    results: list[dict] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            results.append(retention.projects_expire())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["unstarted"] for r in results) == 5
    assert CreditLedgerEntry.objects.filter(token=token, kind="refund").count() == 5


# --- e-mail alerts through a real SMTP server -----------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Sink:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server(settings):
    sink = _Sink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.OPENSCAN_PUBLIC_URL = "https://portal.example.org"
    yield sink
    controller.stop()


def test_finished_private_project_mails_its_owner_with_links(
    smtp_server, private_token
):
    project = _project(
        private_token[0],
        "done",
        result_path="r",
        progress={
            "files": {"result.zip": 1234},
            "stats": {"images_registered": 41, "images_total": 48, "faces": 5000},
        },
    )

    assert (
        notifications.notification_send(project_id=str(project.pk), attempt=1) == "sent"
    )

    (envelope,) = smtp_server.messages
    text = envelope.content.decode()
    assert envelope.rcpt_tos == [private_token[0].email]
    assert (
        f"Subject: Your 3D model '{project.name.removesuffix('.zip')}' is ready" in text
    )
    assert f"https://portal.example.org/projects/{project.pk}/" in text
    assert "https://portal.example.org/d/" in text
    assert "41 of 48 photos" in text
    assert "text/html" in text
    project.refresh_from_db()
    assert project.notify_count == 1
    assert project.notified_at is not None


def test_failed_project_mail_says_why_and_what_to_try(smtp_server, private_token):
    project = _project(
        private_token[0],
        "failed",
        error="only 3 of 40 photos could be placed",
        progress={"refunded": True},
    )
    notifications.notification_send(project_id=str(project.pk), attempt=1)
    text = smtp_server.messages[0].content.decode()
    assert "could not be processed" in text
    assert "only 3 of 40 photos" in text
    assert "refunded" in text


def test_smtp_down_schedules_a_retry_with_backoff_and_leaves_the_project_alone(
    settings, private_token
):
    port = _free_port()  # closed again: nothing listens there
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = (
        "127.0.0.1",
        port,
        2,
    )
    project = _project(private_token[0], "done", result_path="r")

    assert (
        notifications.notification_send(project_id=str(project.pk), attempt=2)
        == "retry 3 in 120 s"
    )

    retry = Schedule.objects.get(name=f"openscan-mail:{project.pk}:3")
    assert retry.func == "projects.tasks.project_notify"
    assert retry.schedule_type == Schedule.ONCE
    assert 110 < (retry.next_run - timezone.now()).total_seconds() <= 120
    project.refresh_from_db()
    assert project.status == "done"
    assert project.notify_count == 0


def test_public_projects_get_no_mail_and_resend_says_so(
    public_token, django_capture_on_commit_callbacks
):
    project = _project(public_token, "done")
    with django_capture_on_commit_callbacks() as callbacks:
        assert notifications.notification_enqueue(project=project) is False
    assert callbacks == []
    with pytest.raises(ApplicationError, match="public token get no e-mail"):
        notifications.notification_resend(project=project)


def test_finishing_a_job_queues_the_alert_after_commit(
    private_token, django_capture_on_commit_callbacks
):
    project = _project(private_token[0], "failed", error="x")
    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_after_finish(project=project)
    assert [t.func() for t in OrmQ.objects.all()] == ["projects.tasks.project_notify"]


# --- public burst limit --------------------------------------------------------


def test_public_burst_limit_refuses_with_a_reason_per_address(
    settings, public_token, private_token
):
    settings.OPENSCAN_PUBLIC_BURST_BYTES = 3 * GB
    throttles.public_burst_consume(token=public_token, ip="10.0.0.1", amount=2 * GB)
    with pytest.raises(
        ApplicationError, match="limit is 3000000000 per 10 minutes"
    ) as info:
        throttles.public_burst_consume(token=public_token, ip="10.0.0.1", amount=2 * GB)
    assert info.value.status == 429
    throttles.public_burst_consume(token=public_token, ip="10.0.0.2", amount=2 * GB)
    throttles.public_burst_consume(
        token=private_token[0], ip="10.0.0.1", amount=50 * GB
    )


def test_resend_endpoint_queues_the_mail_for_a_finished_project(
    token_client, private_token
):
    project = _project(private_token[0], "done", result_path="r")
    pending = _project(private_token[0], "queued")
    assert (
        token_client.post(f"/api/v1/projects/{project.pk}/notify/").status_code == 202
    )
    r = token_client.post(f"/api/v1/projects/{pending.pk}/notify/")
    assert r.status_code == 409
    assert "finished or failed" in r.json()["error"]


def test_status_endpoint_is_small_and_private(token_client, private_token, make_token):
    project = _project(
        private_token[0],
        "processing",
        progress={"stage": "dense", "counters": {"registered": 41, "images": 48}},
    )
    body = token_client.get(f"/api/v1/projects/{project.pk}/status/").json()
    assert body["wire_status"] == "processing started"
    assert body["progress"]["counters"]["registered"] == 41
    from rest_framework.test import APIClient

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token()[1]}")
    assert other.get(f"/api/v1/projects/{project.pk}/status/").status_code == 404


def test_schedules_are_created_idempotently():
    from django.core.management import call_command

    call_command("setup_schedules", verbosity=0)
    call_command("setup_schedules", verbosity=0)
    assert sorted(Schedule.objects.values_list("name", "func", "minutes")) == [
        ("openscan:expire", "projects.tasks.projects_expire", 60),
        ("openscan:sweep", "projects.tasks.jobs_sweep", 1),
    ]
