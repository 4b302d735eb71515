"""HTML pages for projects: list, upload, live status, viewer, downloads, share links.

Thin views: the visibility check is ``selectors.project_get`` (someone else's
project is a 404) or ``selectors.project_get_shared``; changes go through
``projects.services``. Live progress comes from the REST detail endpoint.
"""

import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from openscan_portal.exceptions import ApplicationError
from openscan_portal.public_url import public_url
from projects import portal, selectors, services
from projects.forms import ShareForm
from projects.models import Project
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
    project: Project, *, file_url: Any, photo_url: Any
) -> dict[str, Any]:
    files = portal.viewer_files(project=project)
    model = "model_preview.glb" if "model_preview.glb" in files else "model.glb"
    stats = (
        project.progress.get("stats", {}) if isinstance(project.progress, dict) else {}
    )
    return {
        "model": file_url(model) if model in files else "",
        "full_model": file_url("model.glb") if "model.glb" in files else "",
        "cameras": file_url("cameras.json") if "cameras.json" in files else "",
        "points": file_url("points.ply") if "points.ply" in files else "",
        "photo_base": photo_url("__NAME__"),
        "name": project.name.removesuffix(".zip"),
        "faces": stats.get("faces"),
    }


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("projects:list")
    return render(
        request,
        "projects/home.html",
        {"public_token": settings.OPENSCAN_PUBLIC_TOKEN},
    )


@login_required
@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    token = _token_or_none(request)
    projects = list(selectors.project_list(token=token)[:200]) if token else []
    return render(
        request,
        "projects/list.html",
        {"token": token, "rows": portal.project_rows(projects)},
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
    share_url = (
        public_url(
            request, reverse("projects:shared", kwargs={"share_key": project.share_key})
        )
        if project.share_key
        else ""
    )
    status_config = {
        "api": reverse("projects-api:status", kwargs={"project_id": project.id}),
        "poll_ms": settings.OPENSCAN_POLL_SECONDS * 1000,
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
        )
    return render(
        request,
        "projects/detail.html",
        {
            "project": project,
            "downloads": downloads,
            "share_url": share_url,
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
        },
    )


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


@require_GET
def shared(request: HttpRequest, share_key: str) -> HttpResponse:
    project = selectors.project_get_shared(share_key=share_key)
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
    response = render(
        request,
        "projects/shared.html",
        {"project": project, "viewer_config": viewer_config},
    )
    response["Referrer-Policy"] = "no-referrer"  # The link is the credential.
    response["X-Robots-Tag"] = "noindex"
    return response


@require_GET
def shared_file(request: HttpRequest, share_key: str, name: str) -> HttpResponse:
    return _file_response(selectors.project_get_shared(share_key=share_key), name)


@require_GET
def shared_photo(request: HttpRequest, share_key: str, name: str) -> HttpResponse:
    project = selectors.project_get_shared(share_key=share_key)
    if not project.share_photos:
        raise Http404("The owner shares the model only, not the photos.")
    return _photo_response(project, name)
