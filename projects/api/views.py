"""The REST API for projects: create, list, detail,
delete, resumable part upload, start."""

from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from openscan_portal.exceptions import ApplicationError
from openscan_portal.parsing import StrictIntegerField, header_int
from openscan_portal.public_url import public_url, site_base
from projects import selectors, services, storage
from projects.api.serializers import (
    ProjectOutputSerializer,
    ProjectPageSerializer,
    project_output,
)
from projects.clients import client_key
from projects.models import Project
from projects.services import notifications
from projects.services.uploads import part_direct_target
from tokens import throttles
from tokens.api.auth import request_token


class ProjectListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=255)
        photos = StrictIntegerField(min_value=1)
        filesize = StrictIntegerField(min_value=1)
        parts = StrictIntegerField(min_value=1, max_value=10_000)
        preset = serializers.ChoiceField(choices=Project.Preset.choices, required=False)
        research_consent = serializers.BooleanField(
            required=False, allow_null=True, default=None
        )

    @extend_schema(operation_id="v1_projects_list", responses=ProjectPageSerializer)
    def get(self, request: Request) -> Response:
        token = request_token(request)
        if token.is_public:
            raise exceptions.PermissionDenied(
                "The public token is shared by everyone, so it cannot list projects; "
                "use a private token."
            )
        paginator = LimitOffsetPagination()
        # PAGE_SIZE is set in settings, so there is always a page.
        page = (
            paginator.paginate_queryset(
                selectors.project_list(token=token).select_related("token"),
                request,
                view=self,
            )
            or []
        )
        received = selectors.parts_received_many(projects=page)
        positions = selectors.queue_positions(projects=page)
        return paginator.get_paginated_response(
            [
                project_output(
                    request,
                    p,
                    received=received.get(p.pk, {}),
                    position=positions.get(p.pk, 0),
                )
                for p in page
            ]
        )

    @extend_schema(request=InputSerializer, responses={201: ProjectOutputSerializer})
    def post(self, request: Request) -> Response:
        token = request_token(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        throttles.public_burst_consume(
            token=token,
            ip=throttles.client_ip(request),
            amount=data.validated_data["filesize"],
        )
        project = services.project_create(
            token=token,
            client_key=client_key(throttles.client_ip(request)),
            site_url=site_base(request),
            **data.validated_data,
        )
        return Response(
            project_output(request, project), status=status.HTTP_201_CREATED
        )


class ProjectDetailApi(APIView):
    @extend_schema(responses=ProjectOutputSerializer)
    def get(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(
            token=request_token(request), project_id=project_id
        )
        return Response(project_output(request, project))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(
            token=request_token(request), project_id=project_id
        )
        services.project_delete(project=project)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectStatusApi(APIView):
    """The small answer to poll: status, progress, error and queue position."""

    @extend_schema(responses={200: {"type": "object"}})
    def get(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(
            token=request_token(request), project_id=project_id
        )
        return Response(
            {
                "id": str(project.id),
                "status": project.status,
                "wire_status": selectors.WIRE_STATUS[project.status],
                "queue_position": selectors.queue_position(project=project),
                "progress": project.progress,
                "error": project.error,
                "error_code": project.error_code,
            }
        )


class _ProjectActionApi(APIView):
    """POST runs one project service and answers with the project."""

    service: Callable[..., Project]

    @extend_schema(request=None, responses=ProjectOutputSerializer)
    def post(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(
            token=request_token(request), project_id=project_id
        )
        return Response(project_output(request, type(self).service(project=project)))


class ProjectStartApi(_ProjectActionApi):
    service = staticmethod(services.project_start)


class ProjectResetApi(_ProjectActionApi):
    service = staticmethod(services.project_reset)


class ProjectCancelApi(_ProjectActionApi):
    service = staticmethod(services.project_cancel)


class ProjectReprocessApi(APIView):
    """Process a finished, failed or cancelled project again from its stored photos."""

    class ReprocessInputSerializer(serializers.Serializer):
        preset = serializers.ChoiceField(
            choices=Project.Preset.choices,
            required=False,
            help_text="fast, balanced or quality; the project's current one if left "
            "out.",
        )

    @extend_schema(
        request=ReprocessInputSerializer,
        responses={
            200: ProjectOutputSerializer,
            402: OpenApiResponse(description="Not enough credit for a new run."),
            409: OpenApiResponse(
                description="`input_missing`: the photos are no longer stored; "
                "`project_not_reprocessable`: waiting for the upload, or expired."
            ),
        },
        description="Queue the project again with the photos already uploaded (no "
        "new upload). Charged the upload size again, like a new run; a failed run "
        "is refunded. The current model is deleted. 409 (`input_missing`) when the "
        "photos are no longer stored: reset and upload again; 409 "
        "(`project_not_reprocessable`) while waiting for the upload or expired; "
        "402 when credit is short. Calling it while queued or running changes "
        "nothing.",
    )
    def post(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(
            token=request_token(request), project_id=project_id
        )
        data = self.ReprocessInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_reprocess(
            project=project,
            preset=data.validated_data.get("preset"),
            site_url=site_base(request),
        )
        return Response(project_output(request, project))


class ProjectScaleApi(APIView):
    """Set the real size from two points on model.glb and their distance in mm,
    or clear it; answers the project, whose ``scale`` and downloads then carry
    the real-size copies."""

    class ScaleInputSerializer(serializers.Serializer):
        point_a = serializers.ListField(
            child=serializers.FloatField(), min_length=3, max_length=3, required=False
        )
        point_b = serializers.ListField(
            child=serializers.FloatField(), min_length=3, max_length=3, required=False
        )
        distance_mm = serializers.FloatField(required=False)
        clear = serializers.BooleanField(required=False, default=False)

    @extend_schema(request=ScaleInputSerializer, responses=ProjectOutputSerializer)
    def post(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(
            token=request_token(request), project_id=project_id
        )
        data = self.ScaleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        project = services.project_scale_change(
            project=project,
            clear=values["clear"],
            point_a=values.get("point_a"),
            point_b=values.get("point_b"),
            distance_mm=values.get("distance_mm"),
        )
        return Response(project_output(request, project))


class ProjectNotifyApi(APIView):
    """Send the finished/failed e-mail again (private tokens)."""

    @extend_schema(request=None, responses={202: None})
    def post(self, request: Request, project_id: str) -> Response:
        project = selectors.project_get(
            token=request_token(request), project_id=project_id
        )
        notifications.notification_resend(project=project)
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)


class _RawBodyParser(BaseParser):
    """Declares the raw upload types; the view streams the
    body itself, never via parsers."""

    media_type = "*/*"

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        return None


def _offset_header(request: Request) -> int:
    return header_int(
        request.headers.get("Upload-Offset", request.query_params.get("offset", "")),
        message="Send the part's current size in the Upload-Offset header, in ASCII "
        "digits (HEAD the part to read it).",
        code="offset_missing",
    )


class PartUploadApi(APIView):
    """A part of the project's zip: HEAD/GET say how many bytes arrived, PATCH appends.

    Resumable in the manner of tus: PATCH carries ``Upload-Offset`` equal to the
    bytes already on the server and answers 204 with the new ``Upload-Offset``;
    a stale offset gets 409 with the server's offset, so an interrupted upload
    continues where it stopped instead of starting again.
    """

    parser_classes = (_RawBodyParser,)
    throttle_scope = "uploads"

    def _headers(
        self, request: Request, project: Project, part: int, offset: int
    ) -> dict[str, str]:
        return {
            "Upload-Offset": str(offset),
            "Upload-Max-Size": str(services.uploads_part_limit()),
            "Cache-Control": "no-store",
        }

    @extend_schema(responses={200: None})
    def head(self, request: Request, project_id: str, part: int) -> Response:
        return self.get(request, project_id, part)

    @extend_schema(
        responses={
            200: {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "received": {"type": "integer"},
                },
            }
        }
    )
    def get(self, request: Request, project_id: str, part: int) -> Response:
        project = selectors.project_get(
            token=request_token(request), project_id=project_id
        )
        if not 0 <= part < project.parts:
            raise exceptions.NotFound(
                f"The project has {project.parts} parts (0 to {project.parts - 1})."
            )
        offset = services.part_received(project=project, part=part)
        return Response(
            {"index": part, "received": offset},
            headers=self._headers(request, project, part, offset),
        )

    @extend_schema(
        request={
            "application/offset+octet-stream": {"type": "string", "format": "binary"}
        },
        parameters=[
            OpenApiParameter(
                "Upload-Offset", int, OpenApiParameter.HEADER, required=True
            )
        ],
        responses={204: None, 409: None},
    )
    def patch(self, request: Request, project_id: str, part: int) -> HttpResponse:
        project = selectors.project_get(
            token=request_token(request), project_id=project_id
        )
        offset = _offset_header(request)
        length = header_int(
            request.META.get("CONTENT_LENGTH"),
            message="Send a Content-Length header (ASCII digits) with each chunk.",
            status=411,
        )
        try:
            new_offset = services.part_append(
                project=project,
                part=part,
                offset=offset,
                stream=request._request,  # type: ignore[arg-type]  # file-like over wsgi.input
                length=length,
            )
        except ApplicationError as exc:
            if exc.code == "offset_mismatch":
                current = services.part_received(project=project, part=part)
                return Response(
                    {"error": exc.message, "code": exc.code, "received": current},
                    status=exc.status,
                    headers=self._headers(request, project, part, current),
                )
            raise
        return Response(
            status=status.HTTP_204_NO_CONTENT,
            headers=self._headers(request, project, part, new_offset),
        )

    post = patch


class PartDirectUploadApi(APIView):
    """A target for sending one part straight to the storage
    backend, bypassing this server.

    S3 (``OPENSCAN_S3_DIRECT_UPLOADS``): a presigned ``POST`` (default; an HTML-form
    upload whose policy refuses bodies over the part limit) or ``PUT`` (raw body;
    its size is checked when the project starts). Reusable until ``expires_at``.
    Dropbox (``OPENSCAN_DROPBOX_DIRECT_LINKS``): a one-time temporary upload link
    taking the raw part as a ``POST`` body with ``Content-Type:
    application/octet-stream``.
    A part sent this way replaces what the server had for it; it counts in
    ``received`` once the project starts. 409 where storage takes no direct uploads.
    """

    class DirectUploadInputSerializer(serializers.Serializer):
        method = serializers.ChoiceField(
            choices=["POST", "PUT"], required=False, default="POST"
        )

    throttle_scope = "uploads"

    @extend_schema(
        request=DirectUploadInputSerializer,
        responses={
            200: {
                "type": "object",
                "properties": {
                    "method": {"type": "string"},
                    "url": {"type": "string"},
                    "encoding": {"type": "string", "enum": ["multipart", "raw"]},
                    "fields": {"type": "object"},
                    "headers": {"type": "object"},
                    "expires_at": {"type": "string", "format": "date-time"},
                    "max_size": {"type": "integer"},
                    "one_time": {"type": "boolean"},
                },
            },
            409: None,
        },
    )
    def post(self, request: Request, project_id: str, part: int) -> Response:
        project = selectors.project_get(
            token=request_token(request), project_id=project_id
        )
        data = self.DirectUploadInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        target = part_direct_target(
            project=project, part=part, method=data.validated_data["method"]
        )
        return Response({"index": part, **target})


class ApiRootApi(APIView):
    """What this server offers, so clients can choose the resumable REST upload."""

    permission_classes = ()
    authentication_classes = ()

    @extend_schema(responses={200: {"type": "object"}})
    def get(self, request: Request) -> Response:
        return Response(
            {
                "version": 1,
                "resumable_uploads": True,
                "max_part_size": services.uploads_part_limit(),
                "direct_uploads": storage.backend().direct_uploads_enabled(),
                "schema": public_url(request, "/api/schema/"),
                "docs": public_url(request, "/api/docs/"),
            }
        )
