"""Output shapes shared by several endpoints."""

from typing import Any

from django.urls import reverse
from rest_framework import serializers
from rest_framework.request import Request

from openscan_portal.public_url import public_url
from projects import selectors, services
from projects.models import Project


class PartSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    received = serializers.IntegerField()
    upload_url = serializers.CharField()


class ProjectOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Project.Status.choices)
    wire_status = serializers.CharField()
    photos = serializers.IntegerField()
    filesize = serializers.IntegerField()
    parts = PartSerializer(many=True)
    preset = serializers.CharField()
    research_consent = serializers.BooleanField()
    charged = serializers.IntegerField()
    image_count = serializers.IntegerField(allow_null=True)
    queue_position = serializers.IntegerField()
    progress = serializers.DictField()
    error = serializers.CharField()
    error_code = serializers.CharField()
    result_url = serializers.CharField()
    downloads = serializers.ListField(child=serializers.DictField())
    scale = serializers.DictField(allow_null=True)
    created_at = serializers.DateTimeField()
    queued_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ProjectPageSerializer(serializers.Serializer):
    """A page of the project list (DRF's LimitOffsetPagination)."""

    count = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = ProjectOutputSerializer(many=True)


def project_output(
    request: Request,
    project: Project,
    *,
    received: dict[int, int] | None = None,
    position: int | None = None,
) -> dict[str, Any]:
    """One project for the API; lists pass ``received`` and
    ``position`` read in bulk."""
    if received is None:
        received = (
            services.parts_received(project=project)
            if project.status == Project.Status.CREATED
            else {}
        )
    if position is None:
        position = selectors.queue_position(project=project)
    parts = [
        {
            "index": i,
            "received": received.get(i, 0),
            "upload_url": reverse(
                "projects-api:part", kwargs={"project_id": project.id, "part": i}
            ),
        }
        for i in range(project.parts)
    ]
    downloads = selectors.project_downloads(
        project=project, base=lambda path: public_url(request, path)
    )
    result_url = selectors.downloads_archive_url(downloads)
    data = {
        "id": project.id,
        "name": project.name,
        "status": project.status,
        "wire_status": selectors.WIRE_STATUS[project.status],
        "photos": project.photos,
        "filesize": project.filesize,
        "parts": parts,
        "preset": project.preset,
        "research_consent": project.research_consent,
        "charged": project.charged,
        "image_count": project.image_count,
        "queue_position": position,
        "progress": project.progress,
        "error": project.error,
        "error_code": project.error_code,
        "result_url": result_url,
        "downloads": downloads,
        "scale": selectors.project_scale(project=project),
        "created_at": project.created_at,
        "queued_at": project.queued_at,
        "started_at": project.started_at,
        "finished_at": project.finished_at,
    }
    return ProjectOutputSerializer(data).data
