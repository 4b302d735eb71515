"""Project life: create (and charge), start (check and queue), reset, delete."""

import secrets

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from openscan_portal.clock import utc_day
from openscan_portal.exceptions import ApplicationError
from projects import storage
from projects.archive import ArchiveLimits
from projects.models import Project
from projects.pipeline.types import ErrorCode
from projects.services.queue import job_enqueue_on_commit
from projects.services.scale import project_scale_forget
from projects.services.uploads import (
    parts_check,
    parts_directory_check,
    project_lock,
    upload_discard,
    uploads_part_limit,
)
from projects.storage import storage_delete_tree
from tokens.models import Token
from tokens.services import credit_charge, credit_refund

_NAME_FORBIDDEN = set("/\\\x00") | {chr(c) for c in range(32)}
PARTS_MAX = 10_000
# Parts are slices of at least this size (but the last), or of the part limit if
# smaller.
PART_MIN_BYTES = 1_000_000


def _validate_request(
    *, token: Token, name: str, photos: int, parts: int, filesize: int
) -> None:
    if (
        not name
        or len(name) > 255
        or set(name) & _NAME_FORBIDDEN
        or name.strip(" .") == ""
    ):
        raise ApplicationError(
            "The project name must be 1 to 255 characters without slashes or control "
            "characters, e.g. '2024-01-31 my vase.zip'."
        )
    if photos < 1:
        raise ApplicationError("photos must be at least 1.")
    if parts < 1:
        raise ApplicationError("parts must be at least 1.")
    if filesize < parts:
        raise ApplicationError("filesize must be at least one byte per part.")
    part_max = uploads_part_limit()
    parts_limit = min(PARTS_MAX, -(-filesize // min(PART_MIN_BYTES, part_max)))
    if parts > parts_limit:
        raise ApplicationError(
            f"parts may be at most {parts_limit} for {filesize} bytes (at most one "
            f"part per {min(PART_MIN_BYTES, part_max)} bytes, and never more than "
            f"{PARTS_MAX})."
        )
    if filesize > parts * part_max:
        raise ApplicationError(
            f"{parts} part(s) of at most {part_max} "
            f"bytes{storage.backend().part_limit_reason()} cannot hold {filesize} "
            f"bytes; split the zip into at least {-(-filesize // part_max)} parts."
        )
    if filesize > token.limit_filesize:
        raise ApplicationError(
            f"The zip is {filesize} bytes; this token allows at most "
            f"{token.limit_filesize} bytes per project."
        )
    if photos > token.limit_photos:
        raise ApplicationError(
            f"The set has {photos} photos; this token allows at most "
            f"{token.limit_photos} per project."
        )


def _charge(project: Project) -> None:
    credit_charge(
        token=project.token,
        amount=project.filesize,
        reason=f"Project '{project.name}'",
        project_ref=str(project.id),
    )
    project.charged = project.filesize
    project.charged_at = timezone.now()


def project_refund(*, project: Project, reason: str) -> bool:
    """Give the project's charge back, at most once; return whether this call refunded.

    Must run inside a transaction together with the status change that warrants it.
    """
    amount = project.charged
    if amount <= 0:
        return False
    won = Project.objects.filter(pk=project.pk, charged=amount).update(charged=0)
    if not won:
        return False
    charged_on = utc_day(project.charged_at)
    credit_refund(
        token=project.token,
        amount=amount,
        reason=reason,
        project_ref=str(project.id),
        charged_on=charged_on,
    )
    project.charged = 0
    return True


@transaction.atomic
def project_create(
    *,
    token: Token,
    name: str,
    photos: int,
    parts: int,
    filesize: int,
    preset: str | None = None,
    research_consent: bool | None = None,
    client_key: str = "",
    site_url: str = "",
) -> Project:
    """Create a project and charge its size, or renew a
    project still waiting for upload.

    ``site_url`` is the address the request came to (public_url.site_base): the
    base of the links in the project's e-mails when no public URL is configured.

    Creating again under the same name while the project is ``created`` (a retried
    upload, or after resetProject) returns it with the new sizes; it is charged
    once for its current size. A public-token project belongs to ``client_key``
    (projects.clients): the same name from another client is another project.
    Raises ApplicationError (402 for missing credit).
    """
    client_key = client_key if token.is_public else ""
    _validate_request(
        token=token, name=name, photos=photos, parts=parts, filesize=filesize
    )
    if preset is not None and preset not in Project.Preset.values:
        raise ApplicationError(
            f"preset must be one of {', '.join(Project.Preset.values)}."
        )
    consent = token.is_public if research_consent is None else research_consent
    same_name = {"token": token, "client_key": client_key, "name": name}
    existing = Project.objects.select_for_update().filter(**same_name).first()
    if existing is None:
        project = Project(
            token=token,
            client_key=client_key,
            name=name,
            photos=photos,
            parts=parts,
            filesize=filesize,
            preset=preset or Project.Preset.BALANCED,
            research_consent=consent,
            site_url=site_url[:200],
        )
        try:
            with transaction.atomic():
                project.save(force_insert=True)
        except IntegrityError:
            # A concurrent request created it: treat this one as the retry it is.
            existing = Project.objects.select_for_update().get(**same_name)
        else:
            _charge(project)
            project.save(update_fields=["charged", "charged_at"])
            return project
    if existing.status != Project.Status.CREATED:
        raise ApplicationError(
            f"A project named '{name}' already exists and is "
            f"{existing.get_status_display().lower()}. Reset it first, or use "
            "another name.",
            status=409,
            code="project_exists",
        )
    same_layout = (existing.parts, existing.filesize) == (parts, filesize)
    if existing.charged and existing.charged != filesize:
        project_refund(
            project=existing, reason=f"Project '{name}' created again with another size"
        )
    existing.photos = photos
    if not same_layout:
        existing.parts, existing.filesize = parts, filesize
        existing.upload_generation += 1
        upload_discard(project=existing)
    if preset is not None:
        existing.preset = preset
    if research_consent is not None:
        existing.research_consent = research_consent
    if site_url:
        existing.site_url = site_url[:200]
    if not existing.charged:
        _charge(existing)
    existing.save()
    return existing


def archive_limits(*, project: Project) -> ArchiveLimits:
    """The limits the worker checks the project's zip against.

    The CPU budget is what is left of the project's own: checks that ran out
    of it cannot be had again by resetting and starting anew.
    """
    return ArchiveLimits(
        max_entries=settings.OPENSCAN_ZIP_MAX_ENTRIES,
        max_uncompressed=settings.OPENSCAN_ZIP_MAX_UNCOMPRESSED,
        max_photos=project.token.limit_photos,
        max_image_pixels=settings.OPENSCAN_MAX_IMAGE_PIXELS,
        cpu_seconds=max(
            0.0, settings.OPENSCAN_ZIP_CHECK_CPU_SECONDS - project.check_cpu_seconds
        ),
    )


def project_start(*, project: Project) -> Project:
    """Check that every part arrived and the sizes add up, then queue the project.

    Only rows and the zip's central directory are read (the directory where
    parts are local files), so this answers at once whatever the size. The
    worker joins the parts and checks every entry before reconstructing
    (jobs.job_run); a zip that fails there ends ``failed`` with the reason and
    its charge refunded. Raises ApplicationError; on it the project stays
    ``created`` and can be uploaded again.
    """
    if project.status != Project.Status.CREATED:
        if project.status in {Project.Status.QUEUED, Project.Status.PROCESSING}:
            return project  # Starting twice is harmless: clients retry.
        raise ApplicationError(
            f"The project is {project.get_status_display().lower()}; reset it to "
            "upload and start again.",
            status=409,
            code="project_not_startable",
        )
    parts_check(project=project)
    parts_directory_check(project=project, limits=archive_limits(project=project))
    return _queue(project=project)


@transaction.atomic
def _queue(*, project: Project) -> Project:
    locked = project_lock(project)
    if locked.status in {Project.Status.QUEUED, Project.Status.PROCESSING}:
        return locked  # A concurrent start won.
    if (
        locked.status != Project.Status.CREATED
        or locked.upload_generation != project.upload_generation
    ):
        raise ApplicationError(
            "The project changed while it was being checked; start it again.",
            status=409,
        )
    if not locked.charged:
        _charge(locked)  # Reset refunded it and nobody created it again.
    old_input = locked.input_path
    # Empty until the worker has joined and checked the parts.
    locked.input_path = ""
    locked.image_count = None
    locked.status = Project.Status.QUEUED
    locked.queued_at = timezone.now()
    locked.error = locked.error_code = ""
    locked.progress = {}
    locked.save()
    job_enqueue_on_commit(project=locked)
    if old_input:
        transaction.on_commit(lambda: default_storage.delete(old_input))
    return locked


REPROCESSABLE = {
    Project.Status.DONE,
    Project.Status.FAILED,
    Project.Status.CANCELLED,
}


@transaction.atomic
def project_reprocess(
    *, project: Project, preset: str | None = None, site_url: str = ""
) -> Project:
    """Queue a finished, failed or cancelled project again
    with the photos already stored.

    ``input_path`` is the zip the worker joined and checked on the first run, so
    nothing is uploaded and job_run skips the checks. The run is charged the
    upload size again, like a new one, under the same refund rule: the earlier
    charge was spent (a model, or a run its owner stopped) or already refunded.
    The current model is deleted: the page says so before the click. Processing
    again while queued or running changes nothing (one run, one charge).

    Raises:
        ApplicationError: 409 when the photos are gone or the status does not
            allow it, 402 when credit is short, 400 for an unknown preset.
    """
    if preset is not None and preset not in Project.Preset.values:
        raise ApplicationError(
            f"preset must be one of {', '.join(Project.Preset.values)}."
        )
    locked = project_lock(project)
    if locked.status in {Project.Status.QUEUED, Project.Status.PROCESSING}:
        return locked  # A concurrent "process again" won; clients retry.
    if locked.status not in REPROCESSABLE:
        raise ApplicationError(
            f"The project is {locked.get_status_display().lower()}; only a finished, "
            "failed or cancelled project can be processed again.",
            status=409,
            code="project_not_reprocessable",
        )
    if not locked.input_path or not default_storage.exists(locked.input_path):
        raise ApplicationError(
            "The photos of this project are no longer stored (they never passed the "
            "checks, or they expired), so it cannot be processed again. Reset it and "
            "upload the photos again.",
            status=409,
            code="input_missing",
        )
    locked.charged = 0  # The previous run's charge is spent or was refunded.
    _charge(locked)
    _delete_results_on_commit(locked.result_path)
    project_scale_forget(project=locked)  # it measured the model being replaced
    locked.preset = preset or locked.preset
    if site_url:
        locked.site_url = site_url[:200]
    # A new generation gives the new results their own folder.
    locked.upload_generation += 1
    locked.status = Project.Status.QUEUED
    locked.queued_at = timezone.now()
    locked.result_path = locked.error = locked.error_code = ""
    locked.attempts = 0
    locked.started_at = locked.finished_at = locked.heartbeat_at = None
    locked.progress = {
        "log": [
            f"Queued again with the {locked.get_preset_display().lower()} preset, "
            f"from the {locked.image_count or locked.photos} photos already uploaded."
        ]
    }
    locked.save()
    job_enqueue_on_commit(project=locked)
    return locked


# The refund rule (README, "What is charged and refunded"): a charge comes back
# unless a run delivered a model or was stopped by its owner. A cancelled project
# that still holds a charge was cancelled while running, so it is not here.
_REFUNDABLE_ON_RESET = {Project.Status.CREATED, Project.Status.QUEUED}


@transaction.atomic
def project_reset(*, project: Project) -> Project:
    """Throw away the upload and results so the set can be
    sent again under the same name.

    Credit comes back if the project was never processed. A running project
    cannot be reset (cancel it first).
    """
    locked = project_lock(project)
    if locked.status == Project.Status.PROCESSING:
        raise ApplicationError(
            "The project is being processed; wait for it to finish or cancel it first.",
            status=409,
            code="project_processing",
        )
    if locked.status in _REFUNDABLE_ON_RESET:
        project_refund(
            project=locked, reason=f"Project '{locked.name}' reset before processing"
        )
    else:
        locked.charged = (
            0  # Spent on the processing that happened; a new upload pays anew.
        )
    upload_discard(project=locked)
    _delete_outputs_on_commit(locked)
    project_scale_forget(project=locked)
    locked.status = Project.Status.CREATED
    locked.upload_generation += 1
    locked.input_path = locked.result_path = ""
    locked.error = locked.error_code = ""
    locked.progress = {}
    locked.attempts = 0
    locked.queued_at = locked.started_at = locked.finished_at = locked.heartbeat_at = (
        None
    )
    locked.save()
    return locked


def _delete_outputs_on_commit(project: Project) -> None:
    input_path = project.input_path
    if input_path:
        transaction.on_commit(lambda: default_storage.delete(input_path))
    _delete_results_on_commit(project.result_path)


def _delete_results_on_commit(result_path: str) -> None:
    if result_path:
        transaction.on_commit(lambda: storage_delete_tree(result_path))


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete the project and its files; credit comes back if it was never processed."""
    locked = project_lock(project)
    if locked.status == Project.Status.PROCESSING:
        raise ApplicationError(
            "The project is being processed; cancel it first.",
            status=409,
            code="project_processing",
        )
    if locked.status in _REFUNDABLE_ON_RESET:
        project_refund(
            project=locked, reason=f"Project '{locked.name}' deleted before processing"
        )
    upload_discard(project=locked)
    prefix = locked.storage_prefix
    transaction.on_commit(lambda: storage_delete_tree(prefix))
    locked.delete()


@transaction.atomic
def project_cancel(*, project: Project) -> Project:
    """Cancel a queued or running project; a queued one gets its credit back."""
    locked = project_lock(project)
    if locked.status == Project.Status.QUEUED:
        project_refund(
            project=locked,
            reason=f"Project '{locked.name}' cancelled before processing",
        )
    elif locked.status != Project.Status.PROCESSING:
        raise ApplicationError(
            f"The project is {locked.get_status_display().lower()}; only queued or "
            "running projects can be cancelled.",
            status=409,
        )
    locked.status = Project.Status.CANCELLED
    locked.error = "Cancelled at your request."
    locked.error_code = ErrorCode.CANCELLED
    locked.finished_at = timezone.now()
    locked.save()
    return locked


def project_share(*, project: Project, enabled: bool, photos: bool = False) -> Project:
    """Turn the public share link on (a new random key each time) or off (revokes it).

    ``photos`` lets the link open the original photos too; off unless asked for.
    """
    project.share_key = secrets.token_urlsafe(24) if enabled else ""
    project.share_photos = enabled and photos
    Project.objects.filter(pk=project.pk).update(
        share_key=project.share_key, share_photos=project.share_photos
    )
    return project
