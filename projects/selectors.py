"""Reads for projects. Visibility is decided here and nowhere else."""

import uuid
from collections.abc import Callable, Sequence

from django.db.models import Case, F, IntegerField, Q, QuerySet, Sum, Value, When
from django.http import Http404

from openscan_portal.exceptions import ApplicationError
from projects import links
from projects.models import Project, UploadChunk
from projects.pipeline.types import (
    ARCHIVE_NAME,
    OBJ_BUNDLE_NAME,
    RESULT_FILES,
    SCALED_FILES,
)
from tokens.models import Token

# The strings OpenScanCloud clients know; they stop polling on the last three.
WIRE_STATUS = {
    Project.Status.CREATED: "created",
    Project.Status.QUEUED: "started",
    Project.Status.PROCESSING: "processing started",
    Project.Status.DONE: "processing done",
    Project.Status.FAILED: "processing failed",
    Project.Status.CANCELLED: "processing failed",
    Project.Status.EXPIRED: "expired",
}


def project_list(*, token: Token, search: str = "") -> QuerySet[Project]:
    """The token's projects, newest first; ``search`` keeps names that contain it."""
    projects = Project.objects.filter(token=token)
    if search.strip():
        projects = projects.filter(name__icontains=search.strip())
    return projects.order_by("-created_at")


def project_ids_existing(*, refs: set[tuple[int, str]]) -> set[str]:
    """Of ``(token id, project id)`` pairs from a ledger, the project ids that still
    exist for that token."""
    wanted: dict[int, set[uuid.UUID]] = {}
    for token_id, ref in refs:
        try:
            wanted.setdefault(token_id, set()).add(uuid.UUID(ref))
        except ValueError:  # an old or hand-written reference
            continue
    if not wanted:
        return set()
    match = Q()
    for token_id, ids in wanted.items():
        match |= Q(token_id=token_id, pk__in=ids)
    return {
        str(pk) for pk in Project.objects.filter(match).values_list("pk", flat=True)
    }


def project_get(*, token: Token, project_id: uuid.UUID | str) -> Project:
    """The token's project with this id; Http404 for anyone
    else's, so existence never leaks."""
    try:
        pid = (
            project_id
            if isinstance(project_id, uuid.UUID)
            else uuid.UUID(str(project_id))
        )
    except ValueError as exc:
        raise Http404("No such project.") from exc
    project = (
        Project.objects.filter(token=token, pk=pid).select_related("token").first()
    )
    if project is None:
        raise Http404("No such project.")
    return project


def project_get_by_name(
    *, token: Token, name: str, client_key: str = ""
) -> Project | None:
    """The token's project of this name; for the public token, only the client's own.

    Another client's public project is None, exactly like one that does not exist.
    """
    return (
        Project.objects.filter(
            token=token, client_key=client_key if token.is_public else "", name=name
        )
        .select_related("token")
        .first()
    )


def queue_rank() -> Case:
    """The queue's first sort key: private tokens (0) before public ones (1).

    Workers claim by (rank, queued_at); positions are counted the same way.
    """
    return Case(
        When(token__kind=Token.Kind.PRIVATE, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )


def queue_position(*, project: Project) -> int:
    """Projects that will be taken before this one (private tokens go first)."""
    if project.status != Project.Status.QUEUED or project.queued_at is None:
        return 0
    rank = 1 if project.token.is_public else 0
    return (
        Project.objects.filter(status=Project.Status.QUEUED)
        .annotate(rank=queue_rank())
        .filter(Q(rank__lt=rank) | Q(rank=rank, queued_at__lt=project.queued_at))
        .count()
    )


def queue_positions(*, projects: Sequence[Project]) -> dict[uuid.UUID, int]:
    """``queue_position`` of each of ``projects`` that is queued, in one query."""
    if not any(p.status == Project.Status.QUEUED for p in projects):
        return {}
    order = (
        Project.objects.filter(status=Project.Status.QUEUED)
        .annotate(rank=queue_rank())
        .order_by("rank", "queued_at")
        .values_list("pk", flat=True)
    )
    return {pk: ahead for ahead, pk in enumerate(order)}


def parts_received_many(
    *, projects: Sequence[Project]
) -> dict[uuid.UUID, dict[int, int]]:
    """``parts_received`` of each of ``projects`` still taking parts, in one query."""
    created = [p.pk for p in projects if p.status == Project.Status.CREATED]
    if not created:
        return {}
    rows = (
        UploadChunk.objects.filter(
            project__in=created, generation=F("project__upload_generation")
        )
        .values("project_id", "part")
        .annotate(s=Sum("size"))
    )
    received: dict[uuid.UUID, dict[int, int]] = {}
    for row in rows:
        received.setdefault(row["project_id"], {})[row["part"]] = row["s"]
    return received


def queue_counts() -> dict[str, int]:
    return {
        "queued": Project.objects.filter(status=Project.Status.QUEUED).count(),
        "processing": Project.objects.filter(status=Project.Status.PROCESSING).count(),
    }


def queued_private_count() -> int:
    return Project.objects.filter(
        status=Project.Status.QUEUED, token__kind=Token.Kind.PRIVATE
    ).count()


def queue_estimate_seconds(*, ahead: int) -> int:
    """A rough wait: projects ahead times the median run time of recent projects."""
    recent = list(
        Project.objects.filter(
            status=Project.Status.DONE,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .order_by("-finished_at")
        .values_list("started_at", "finished_at")[:20]
    )
    durations = sorted((end - start).total_seconds() for start, end in recent)
    typical = durations[len(durations) // 2] if durations else 300.0
    return int(ahead * typical)


def project_scale(*, project: Project) -> dict[str, object] | None:
    """The real size the owner set: mm per model unit and the model's size in mm."""
    if project.mm_per_unit is None:
        return None
    scale = project.scale if isinstance(project.scale, dict) else {}
    return {
        "mm_per_unit": project.mm_per_unit,
        "dimensions_mm": scale.get("dimensions_mm"),
    }


def _scaled_copies(project: Project) -> dict[str, int]:
    if project.mm_per_unit is None or not isinstance(project.scale, dict):
        return {}
    return dict(project.scale.get("files", {}))


def result_file_path(*, project: Project, filename: str) -> str | None:
    """Where a finished project's result file (or real-size copy) is stored."""
    copies = _scaled_copies(project)
    if filename in copies:
        return f"{project.scale['prefix']}/{filename}"
    files = project.progress.get("files") or {}
    if files and filename not in files:
        return None
    return f"{project.result_path}/{filename}"


def project_downloads(
    *, project: Project, base: Callable[[str], str]
) -> list[dict[str, object]]:
    """The listed result files of a finished project, with their sizes and signed
    links, in the output contract's order; once the real size is set, the
    real-size copies stand in for their originals."""
    if project.status != Project.Status.DONE or not project.result_path:
        return []
    stored: dict[str, int] = project.progress.get("files", {})
    copies = _scaled_copies(project)
    files = {}
    # Results made before model_obj.zip existed still list the OBJ's parts.
    bundled = OBJ_BUNDLE_NAME in stored
    for f in RESULT_FILES:
        if f.name not in stored or (not f.listed and bundled):
            continue
        copy = SCALED_FILES.get(f.name)
        if copy is not None and copy.name in copies:
            files[copy.name] = copies[copy.name]
        else:
            files[f.name] = stored[f.name]
    return [
        {
            "name": name,
            "size": size,
            "url": base(
                links.download_path(
                    project_id=project.id,
                    generation=project.upload_generation,
                    filename=name,
                )
            ),
        }
        for name, size in files.items()
    ]


def downloads_archive_url(downloads: list[dict[str, object]]) -> str:
    """The link to result.zip among ``project_downloads``; "" when not there."""
    return next((str(d["url"]) for d in downloads if d["name"] == ARCHIVE_NAME), "")


def project_of_upload_link(*, project_id: uuid.UUID) -> Project:
    """The project an upload link points at (the link is the credential).

    Raises:
        ApplicationError: 404 ``project_gone`` once the project was deleted.
    """
    project = Project.objects.filter(pk=project_id).select_related("token").first()
    if project is None:
        raise ApplicationError(
            "The project of this link no longer exists; it was deleted.",
            status=404,
            code="project_gone",
        )
    return project


def project_of_download_link(*, project_id: uuid.UUID, generation: int) -> Project:
    """The finished project a download link points at;
    Http404 once it is gone or reset."""
    project = Project.objects.filter(
        pk=project_id, upload_generation=generation
    ).first()
    if (
        project is None
        or project.status != Project.Status.DONE
        or not project.result_path
    ):
        raise Http404("This result is no longer available.")
    return project


def project_get_shared(*, share_key: str) -> Project:
    """The project a share link opens; Http404 when the link
    was revoked or never existed."""
    if not share_key:
        raise Http404("No such project.")
    project = Project.objects.filter(
        share_key=share_key, status=Project.Status.DONE
    ).first()
    if project is None:
        raise Http404("This share link was revoked or the model is not ready.")
    return project
