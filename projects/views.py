"""HTML pages for projects: list, upload, live status, viewer, downloads, share links.

Thin views: the visibility check is ``selectors.project_get`` (someone else's
project is a 404) or ``selectors.project_get_shared``; changes go through
``projects.services``. Live progress comes from the REST detail endpoint.
"""

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from csp.decorators import csp_replace
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET, require_POST

from openscan_portal.exceptions import ApplicationError
from openscan_portal.public_url import public_url, site_base
from projects import portal, selectors, services
from projects.forms import ReprocessForm, ShareForm
from projects.models import Project
from projects.pipeline.types import COVERAGE_NAME
from tokens.models import Token
from tokens.selectors import token_credit_available, token_for_user


def _token_or_none(request: HttpRequest) -> Token | None:
    return token_for_user(user=request.user)


def _owned(request: HttpRequest, project_id: uuid.UUID) -> Project:
    token = _token_or_none(request)
    if token is None:
        raise Http404("No such project.")
    return selectors.project_get(token=token, project_id=project_id)


def _viewer_config(
    project: Project, *, file_url: Any, photo_url: Any, scale_url: str | None = None
) -> dict[str, Any]:
    """What viewer.js reads; ``scale_url`` only for the owner's own page."""
    files = portal.viewer_files(project=project)
    model = "model_preview.glb" if "model_preview.glb" in files else "model.glb"
    stats = (
        project.progress.get("stats", {}) if isinstance(project.progress, dict) else {}
    )
    model_url = file_url(model) if model in files else ""
    full_model_url = file_url("model.glb") if "model.glb" in files else ""
    return {
        "model": model_url,
        "full_model": full_model_url,
        "model_url": model_url,
        "full_model_url": full_model_url,
        "draco_path": _draco_path(),
        "coverage_url": file_url(COVERAGE_NAME) if COVERAGE_NAME in files else None,
        "scale": {"mm_per_unit": project.mm_per_unit}
        if project.mm_per_unit is not None
        else None,
        "scale_url": scale_url,
        "cameras": file_url("cameras.json") if "cameras.json" in files else "",
        "points": file_url("points.ply") if "points.ply" in files else "",
        "photo_base": photo_url("__NAME__"),
        "name": project.name.removesuffix(".zip"),
        "faces": stats.get("faces"),
    }


def _draco_path() -> str:
    """The folder DRACOLoader fetches its decoder from (named from a file in it:
    hashed static names keep their folder)."""
    return static(f"{portal.DRACO_DIR}draco_decoder.wasm").rsplit("/", 1)[0] + "/"


def _embed_url(request: HttpRequest, share_key: str) -> str:
    """The page other sites frame, for the embed code on both share pages."""
    return public_url(
        request, reverse("projects:shared-embed", kwargs={"share_key": share_key})
    )


# The landing page's demo: a model the real engine made from the 24-photo
# synthetic set (benchmarks/synthetic.py), shipped as a static file; no cameras,
# points or photos.
_DEMO_VIEWER: dict[str, Any] = {
    "model": "projects/demo/statuette.glb",
    "full_model": "",
    "cameras": "",
    "points": "",
    "photo_base": "",
    "name": "demo statuette",
    "faces": None,
}


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("projects:list")
    return render(
        request,
        "projects/home.html",
        {
            "public_token": settings.OPENSCAN_PUBLIC_TOKEN,
            "costs": {
                "signup_credit": settings.OPENSCAN_SIGNUP_CREDIT,
                "public_daily_quota": settings.OPENSCAN_PUBLIC_DAILY_QUOTA,
                "public_limit_filesize": settings.OPENSCAN_PUBLIC_LIMIT_FILESIZE,
                "public_limit_photos": settings.OPENSCAN_PUBLIC_LIMIT_PHOTOS,
                "private_limit_filesize": settings.OPENSCAN_PRIVATE_LIMIT_FILESIZE,
                "private_limit_photos": settings.OPENSCAN_PRIVATE_LIMIT_PHOTOS,
            },
            "viewer_config": _DEMO_VIEWER
            | {
                "model": static(_DEMO_VIEWER["model"]),
                "draco_path": _draco_path(),
            },
        },
    )


@login_required
@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    token = _token_or_none(request)
    search = request.GET.get("q", "")[:200]
    projects = (
        list(selectors.project_list(token=token, search=search)[:200]) if token else []
    )
    rows = portal.project_rows(projects)
    return render(
        request,
        "projects/list.html",
        {
            "token": token,
            "rows": rows,
            "search": search,
            "list_config": {
                "status_api": reverse(
                    "projects-api:status", kwargs={"project_id": uuid.UUID(int=0)}
                ),
                "poll_ms": round(settings.OPENSCAN_POLL_SECONDS * 1000),
                "stages": portal.STAGE_LABELS,
            },
        },
    )


@login_required
@require_GET
def project_new(request: HttpRequest) -> HttpResponse:
    token = _token_or_none(request)
    if token is None:
        messages.info(
            request, "Verify your e-mail address first: your token comes with it."
        )
        return redirect("tokens:detail")
    config = {
        "api_root": reverse("projects-api:root"),
        "api_token": reverse("tokens-api:detail"),
        "api_projects": reverse("projects-api:list"),
        "project_page": reverse(
            "projects:detail", kwargs={"project_id": uuid.UUID(int=0)}
        ),
        "chunk_size": settings.OPENSCAN_BROWSER_CHUNK_BYTES,
        "public_token": token.is_public,
        "limit_filesize": token.limit_filesize,
        "limit_photos": token.limit_photos,
        "credit": token_credit_available(token=token),
        "part_max": services.uploads_part_limit(),
        "unstarted_grace_hours": settings.OPENSCAN_UNSTARTED_GRACE_HOURS,
    }
    return render(
        request, "projects/new.html", {"token": token, "upload_config": config}
    )


@login_required
@require_GET
def project_detail(request: HttpRequest, project_id: uuid.UUID) -> HttpResponse:
    project = _owned(request, project_id)
    downloads = selectors.project_downloads(
        project=project, base=lambda path: public_url(request, path)
    )
    share_url = embed_url = ""
    if project.share_key:
        share_url = public_url(
            request, reverse("projects:shared", kwargs={"share_key": project.share_key})
        )
        embed_url = _embed_url(request, project.share_key)
    status_config = {
        "api": reverse("projects-api:status", kwargs={"project_id": project.id}),
        "poll_ms": round(settings.OPENSCAN_POLL_SECONDS * 1000),
        "status": project.status,
        "terminal": project.is_terminal,
    }
    viewer_config = None
    if project.status == Project.Status.DONE:
        viewer_config = _viewer_config(
            project,
            file_url=lambda name: reverse(
                "projects:file", kwargs={"project_id": project.id, "name": name}
            ),
            photo_url=lambda name: reverse(
                "projects:photo", kwargs={"project_id": project.id, "name": name}
            ),
            scale_url=reverse("projects:scale", kwargs={"project_id": project.id}),
        )
    return render(
        request,
        "projects/detail.html",
        {
            "project": project,
            "downloads": downloads,
            "share_url": share_url,
            "embed_url": embed_url,
            "status_config": status_config,
            "viewer_config": viewer_config,
            "advice": portal.failure_advice(project=project)
            if project.status == Project.Status.FAILED
            else "",
            "stats": project.progress.get("stats", {})
            if isinstance(project.progress, dict)
            else {},
            "warnings": project.progress.get("warnings", [])
            if isinstance(project.progress, dict)
            else [],
            # The stored photos can be processed again: the service has the final say.
            "can_reprocess": bool(project.input_path)
            and project.status in services.REPROCESSABLE,
            "presets": [
                (value, label, PRESET_NOTES[value])
                for value, label in Project.Preset.choices
            ],
        },
    )


# What each preset trades, shown beside the choice on the "Process again" form.
PRESET_NOTES = {
    Project.Preset.FAST: "quickest",
    Project.Preset.BALANCED: "best trade-off",
    Project.Preset.QUALITY: "finest, slowest",
}


_ACTIONS = {
    "start": (services.project_start, "Started: the project is in the queue."),
    "cancel": (services.project_cancel, "Cancelled."),
    "reset": (
        services.project_reset,
        "Reset: upload the photos again to process it anew.",
    ),
}


@login_required
@require_POST
def project_action(
    request: HttpRequest, project_id: uuid.UUID, action: str
) -> HttpResponse:
    project = _owned(request, project_id)
    if action == "delete":
        try:
            services.project_delete(project=project)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("projects:detail", project_id=project.id)
        messages.success(request, f"Deleted '{project.name}'.")
        return redirect("projects:list")
    if action not in _ACTIONS:
        raise Http404("No such action.")
    service, done = _ACTIONS[action]
    try:
        service(project=project)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    if action == "reset":
        return redirect(
            f"{reverse('projects:new')}?{urlencode({'name': project.name})}"
        )
    return redirect("projects:detail", project_id=project.id)


@login_required
@require_POST
def project_share(request: HttpRequest, project_id: uuid.UUID) -> HttpResponse:
    project = _owned(request, project_id)
    form = ShareForm(request.POST)
    valid = form.is_valid()
    enabled = valid and form.cleaned_data["enabled"]
    photos = valid and form.cleaned_data["photos"]
    services.project_share(project=project, enabled=enabled, photos=photos)
    if not enabled:
        done = "Share link revoked."
    elif photos:
        done = "Share link created: anyone with it can view the model and the photos."
    else:
        done = "Share link created: anyone with it can view the model, not the photos."
    messages.success(request, done)
    return redirect(
        f"{reverse('projects:detail', kwargs={'project_id': project.id})}#share"
    )


@login_required
@require_POST
def project_reprocess(request: HttpRequest, project_id: uuid.UUID) -> HttpResponse:
    project = _owned(request, project_id)
    form = ReprocessForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a preset: fast, balanced or quality.")
        return redirect("projects:detail", project_id=project.id)
    try:
        project = services.project_reprocess(
            project=project,
            preset=form.cleaned_data["preset"],
            site_url=site_base(request),
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Queued again with the {project.get_preset_display().lower()} preset, "
            "from the photos already uploaded.",
        )
    return redirect("projects:detail", project_id=project.id)


@login_required
@require_POST
def project_scale(request: HttpRequest, project_id: uuid.UUID) -> JsonResponse:
    """Set or clear the real size (JSON in, JSON out; CSRF as for every form).

    Body: {"point_a": [x, y, z], "point_b": [x, y, z], "distance_mm": d} in the
    frame of model.glb, or {"clear": true}. Answers the scale and the model's
    dimensions in mm; 400 {"detail": reason} for input that cannot be right.
    """
    project = _owned(request, project_id)
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return JsonResponse({"detail": "Send a JSON object."}, status=400)
    try:
        project = services.project_scale_change(
            project=project,
            clear=body.get("clear") is True,
            point_a=body.get("point_a"),
            point_b=body.get("point_b"),
            distance_mm=body.get("distance_mm"),
        )
    except ApplicationError as exc:
        return JsonResponse({"detail": exc.message}, status=exc.status)
    return JsonResponse(
        selectors.project_scale(project=project)
        or {"mm_per_unit": None, "dimensions_mm": None}
    )


def _file_response(project: Project, name: str) -> FileResponse:
    fh, content_type = portal.viewer_file_open(project=project, name=name)
    response = FileResponse(fh, content_type=content_type)
    response["Cache-Control"] = "private, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _photo_response(project: Project, name: str) -> HttpResponse:
    data, content_type = portal.project_photo_read(project=project, name=name)
    response = HttpResponse(data, content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_GET
def project_file(
    request: HttpRequest, project_id: uuid.UUID, name: str
) -> HttpResponse:
    return _file_response(_owned(request, project_id), name)


@login_required
@require_GET
def project_photo(
    request: HttpRequest, project_id: uuid.UUID, name: str
) -> HttpResponse:
    return _photo_response(_owned(request, project_id), name)


def _unfurl(request: HttpRequest, project: Project, share_key: str) -> dict[str, str]:
    """Open Graph / Twitter card values, so a pasted share link shows a preview.

    Chat apps fetch the page without cookies and need absolute URLs; the image is
    the thumbnail served through the same share link.
    """
    photos = project.image_count or project.photos
    thumbnail = "thumbnail.png" in portal.viewer_files(project=project)
    return {
        "title": project.name.removesuffix(".zip"),
        "description": f"A textured 3D model made with OpenScan Portal from {photos} "
        "photos. Open it to turn it around in your browser.",
        "url": public_url(
            request, reverse("projects:shared", kwargs={"share_key": share_key})
        ),
        "image": public_url(
            request,
            reverse(
                "projects:shared-file",
                kwargs={"share_key": share_key, "name": "thumbnail.png"},
            ),
        )
        if thumbnail
        else "",
    }


def _shared_viewer_config(project: Project, share_key: str) -> dict[str, Any]:
    viewer_config = _viewer_config(
        project,
        file_url=lambda name: reverse(
            "projects:shared-file", kwargs={"share_key": share_key, "name": name}
        ),
        photo_url=lambda name: reverse(
            "projects:shared-photo", kwargs={"share_key": share_key, "name": name}
        ),
    )
    if not project.share_photos:
        viewer_config["photo_base"] = ""  # The viewer then offers no photos.
    return viewer_config


def _shared_headers(response: HttpResponse) -> HttpResponse:
    response["Referrer-Policy"] = "no-referrer"  # The link is the credential.
    response["X-Robots-Tag"] = "noindex"
    return response


@require_GET
def shared(request: HttpRequest, share_key: str) -> HttpResponse:
    project = selectors.project_get_shared(share_key=share_key)
    response = render(
        request,
        "projects/shared.html",
        {
            "project": project,
            "viewer_config": _shared_viewer_config(project, share_key),
            "embed_url": _embed_url(request, share_key),
            "unfurl": _unfurl(request, project, share_key),
        },
    )
    return _shared_headers(response)


# The one page other sites may frame: just the viewer, no forms or session
# actions, so framing it cannot be turned into clickjacking. Every other page
# keeps X-Frame-Options DENY and frame-ancestors 'none'.
@require_GET
@xframe_options_exempt
@csp_replace({"frame-ancestors": ["*"]})
def shared_embed(request: HttpRequest, share_key: str) -> HttpResponse:
    project = selectors.project_get_shared(share_key=share_key)
    response = render(
        request,
        "projects/embed.html",
        {
            "project": project,
            "viewer_config": _shared_viewer_config(project, share_key),
            "share_url": reverse("projects:shared", kwargs={"share_key": share_key}),
        },
    )
    return _shared_headers(response)


@require_GET
def shared_file(request: HttpRequest, share_key: str, name: str) -> HttpResponse:
    return _file_response(selectors.project_get_shared(share_key=share_key), name)


@require_GET
def shared_photo(request: HttpRequest, share_key: str, name: str) -> HttpResponse:
    project = selectors.project_get_shared(share_key=share_key)
    if not project.share_photos:
        raise Http404("The owner shares the model only, not the photos.")
    return _photo_response(project, name)
