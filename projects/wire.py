"""The OpenScanCloud wire API, exactly as existing clients speak it.

Every call is a GET with query-string parameters (extra ones are ignored) and
HTTP Basic auth ``openscan:free`` that is accepted and not needed: the token
parameter is the credential. Answers are JSON; errors are 4xx with
``{"error": "<what to do>"}``. Views only parse, call a service and answer.
"""

import functools
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.validators import validate_email
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from openscan_portal.exceptions import ApplicationError
from openscan_portal.parsing import ascii_int, header_int
from openscan_portal.public_url import public_url, site_base
from projects import links, selectors, services, storage
from projects.clients import client_key
from projects.models import Project
from projects.pipeline.types import ARCHIVE_NAME, OBJ_PARTS, RESULT_MEDIA_TYPES
from tokens import selectors as token_selectors
from tokens import services as token_services
from tokens import throttles
from tokens.models import Token

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _query(request: HttpRequest) -> QueryDict:
    # Clients send one `filelist` per photo: thousands of parameters, more than
    # Django's DATA_UPLOAD_MAX_NUMBER_FIELDS. The request line (1 MiB at most,
    # request_limits) bounds them instead.
    query = QueryDict(mutable=True)
    raw = request.META.get("QUERY_STRING", "").encode("iso-8859-1")
    for key, value in parse_qsl(
        raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=None
    ):
        query.appendlist(key, value)
    query._mutable = (
        False  # As Django's own request.GET; QueryDict has no public freeze.
    )
    return query


def wire_endpoint(view: View) -> View:
    """Turn ApplicationError into a 4xx answer and allow GET (and HEAD) only."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.GET = _query(request)
        try:
            return view(request, *args, **kwargs)
        except ApplicationError as exc:
            return _error(exc.message, exc.status)

    return require_GET(wrapper)


def _param(request: HttpRequest, name: str) -> str:
    value = request.GET.get(name)
    if value is None or value == "":
        raise ApplicationError(f"The parameter '{name}' is missing.")
    return value


def _int_param(request: HttpRequest, name: str) -> int:
    raw = _param(request, name)
    value = ascii_int(raw)
    if value is None:
        raise ApplicationError(
            f"The parameter '{name}' must be a whole number in ASCII digits, got "
            f"'{raw.strip()[:40]}'."
        )
    return value


def _token(request: HttpRequest) -> Token:
    token = token_selectors.token_get_by_key(key=_param(request, "token"))
    if token is None:
        raise ApplicationError(
            "The token is unknown or deactivated. Check it on your token page."
        )
    token_services.token_touch(token=token)
    return token


def _client_key(request: HttpRequest, token: Token) -> str:
    return client_key(throttles.client_ip(request)) if token.is_public else ""


def _project(request: HttpRequest, token: Token) -> Project | None:
    """The named project of this token (and, for the public token, of this client)."""
    return selectors.project_get_by_name(
        token=token,
        name=_param(request, "project"),
        client_key=_client_key(request, token),
    )


def _upload_links(request: HttpRequest, project: Project) -> list[str]:
    return [
        storage.backend().wire_upload_link(project=project, part=i)
        or public_url(
            request,
            links.upload_path(
                project_id=project.id, generation=project.upload_generation, part=i
            ),
        )
        for i in range(project.parts)
    ]


def _download_link(request: HttpRequest, project: Project) -> str:
    if project.status != Project.Status.DONE or not project.result_path:
        return ""
    path = links.download_path(
        project_id=project.id,
        generation=project.upload_generation,
        filename=ARCHIVE_NAME,
    )
    return public_url(request, path)


@wire_endpoint
def status(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "online"})


@wire_endpoint
def get_token_info(request: HttpRequest) -> HttpResponse:
    token = _token(request)
    return JsonResponse(
        {
            "credit": token_selectors.token_credit_available(token=token),
            "limit_filesize": token.limit_filesize,
            "limit_photos": token.limit_photos,
        }
    )


@wire_endpoint
def create_project(request: HttpRequest) -> HttpResponse:
    token = _token(request)
    name, photos = _param(request, "project"), _int_param(request, "photos")
    parts, filesize = _int_param(request, "parts"), _int_param(request, "filesize")
    throttles.public_burst_consume(
        token=token, ip=throttles.client_ip(request), amount=filesize
    )
    project = services.project_create(
        token=token,
        name=name,
        photos=photos,
        parts=parts,
        filesize=filesize,
        client_key=_client_key(request, token),
        site_url=site_base(request),
    )
    return JsonResponse(
        {
            "status": "created",
            "ulink": _upload_links(request, project),
            "credit": project.charged,
        }
    )


@wire_endpoint
def start_project(request: HttpRequest) -> HttpResponse:
    project = _project(request, _token(request))
    if project is None:
        raise ApplicationError(
            "There is no project of that name for this token; create it first."
        )
    services.project_start(project=project)
    return JsonResponse({"status": "started"})


@wire_endpoint
def get_project_info(request: HttpRequest) -> HttpResponse:
    project = _project(request, _token(request))
    if project is None:
        # OpenScan2 reads 401 as "this project is new".
        return _error("There is no project of that name for this token.", 401)
    ulinks = (
        _upload_links(request, project)
        if project.status == Project.Status.CREATED
        else []
    )
    answer = {
        "dlink": _download_link(request, project),
        "status": selectors.WIRE_STATUS[project.status],
        "ulink": ulinks,
    }
    if project.status == Project.Status.FAILED:
        answer["error"] = project.error  # Clients ignore keys they do not know.
    return JsonResponse(answer)


@wire_endpoint
def reset_project(request: HttpRequest) -> HttpResponse:
    project = _project(request, _token(request))
    if project is None:
        raise ApplicationError("There is no project of that name for this token.")
    services.project_reset(project=project)
    return JsonResponse({})


@wire_endpoint
def request_token(request: HttpRequest) -> HttpResponse:
    email = _param(request, "mail").strip()
    forename = _param(request, "forename").strip()[:100]
    surname = _param(request, "lastname").strip()[:100]
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ApplicationError(
            f"'{email[:80]}' is not a valid e-mail address."
        ) from exc
    token_services.token_request(
        email=email,
        forename=forename,
        surname=surname,
        ip=throttles.client_ip(request),
    )
    return JsonResponse({})


@wire_endpoint
def get_queue_estimate(request: HttpRequest) -> HttpResponse:
    token = _token(request)
    counts = selectors.queue_counts()
    ahead = counts["queued"] if token.is_public else selectors.queued_private_count()
    return JsonResponse(
        {
            "queue": ahead,
            "processing": counts["processing"],
            "estimate_seconds": selectors.queue_estimate_seconds(ahead=ahead),
        }
    )


@csrf_exempt
@require_http_methods(["POST", "PUT"])
def upload_part(request: HttpRequest, signed: str) -> HttpResponse:
    """Receive one part at its signed upload link (no auth: the link is the
    credential)."""
    try:
        target = links.upload_target(signed)
        project = selectors.project_of_upload_link(project_id=target.project_id)
        length = _body_length(request)
        # A chunked body is read from the server's decoded input: Django's request
        # stream stops at Content-Length, which a chunked body lacks.
        body = request if length is not None else request.environ["wsgi.input"]
        chunk = services.part_replace(
            project=project,
            generation=target.generation,
            part=target.part,
            stream=body,  # type: ignore[arg-type]  # HttpRequest is file-like over wsgi.input
            length=length,
        )
    except ApplicationError as exc:
        return _error(exc.message, exc.status)
    return JsonResponse(
        {"part": target.part + 1, "size": chunk.size, "sha256": chunk.sha256}
    )


def _body_length(request: HttpRequest) -> int | None:
    """The body's Content-Length, or None for a chunked body the server decodes."""
    raw = request.META.get("CONTENT_LENGTH")
    if raw:
        return header_int(
            raw,
            message="The Content-Length header must be a whole number in ASCII digits.",
        )
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and request.environ.get("wsgi.input_terminated"):
        return None
    if chunked:
        raise ApplicationError(
            "This server cannot read chunked bodies; send the part with a "
            "Content-Length."
        )
    return 0  # No body at all: answered as an empty part.


@require_http_methods(["GET", "HEAD"])
def download(request: HttpRequest, signed: str, filename: str) -> HttpResponse:
    """Serve a finished project's result file; extra query
    parameters (dl=1) are ignored.

    On S3 or Dropbox a GET answers 302 to the backend (a presigned GET or the
    file's Dropbox shared link; OPENSCAN_DOWNLOAD_REDIRECT); HEAD and local
    storage stream the file from here.
    """
    try:
        project_id, generation = links.download_target(signed)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc
    project = selectors.project_of_download_link(
        project_id=project_id, generation=generation
    )
    name = selectors.result_file_path(project=project, filename=filename)
    if name is None:
        raise Http404("The result has no such file.")
    # The OBJ's parts keep their own names: model.obj names model.mtl, which
    # names texture.jpg, so only then do they find each other in one folder.
    download_name = (
        filename
        if filename in OBJ_PARTS
        else f"{project.name.removesuffix('.zip')}-{filename}"
    )
    if request.method == "GET":
        url = storage.backend().download_redirect_url(name=name, filename=download_name)
        if url:
            return HttpResponseRedirect(url)
    elif storage.backend().remote:
        # Answer HEAD from the metadata: opening a remote file would fetch it all.
        response = HttpResponse(content_type=RESULT_MEDIA_TYPES[filename])
        response["Content-Length"] = str(default_storage.size(name))
        response["Content-Disposition"] = content_disposition_header(
            True, download_name
        )
        return response
    return FileResponse(
        default_storage.open(name, "rb"), as_attachment=True, filename=download_name
    )
