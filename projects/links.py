"""Signed links: upload links (ulink) and download links (dlink).

A link is path-only and uses only ``[A-Za-z0-9/_.:-]``: the firmware pastes it
unquoted into a shell command line and never follows redirects. Upload links
are bound to one part of one upload generation of one project and expire;
download links live as long as the result they point to.
"""

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

from openscan_portal.exceptions import ApplicationError

_UPLOAD_SALT = "projects.upload-part"
_DOWNLOAD_SALT = "projects.download"


@dataclass(frozen=True, slots=True)
class UploadTarget:
    project_id: uuid.UUID
    generation: int
    part: int


def upload_path(*, project_id: uuid.UUID, generation: int, part: int) -> str:
    signed = signing.TimestampSigner(salt=_UPLOAD_SALT).sign_object(
        {"p": project_id.hex, "g": generation, "i": part}
    )
    return reverse("wire:upload", kwargs={"signed": signed})


def upload_target(signed: str) -> UploadTarget:
    """Decode an upload link.

    Raises:
        ApplicationError: 410 when expired, 403 when forged or damaged.
    """
    try:
        data = signing.TimestampSigner(salt=_UPLOAD_SALT).unsign_object(
            signed, max_age=settings.OPENSCAN_UPLOAD_LINK_SECONDS
        )
        return UploadTarget(
            project_id=uuid.UUID(hex=data["p"]),
            generation=int(data["g"]),
            part=int(data["i"]),
        )
    except signing.SignatureExpired as exc:
        raise ApplicationError(
            "This upload link has expired (links are valid for 4 hours). Ask for new "
            "links with getProjectInfo or createProject and send the part again.",
            status=410,
            code="link_expired",
        ) from exc
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise ApplicationError(
            "This upload link is not valid; copy the whole link the server returned.",
            status=403,
            code="link_invalid",
        ) from exc


def download_path(*, project_id: uuid.UUID, generation: int, filename: str) -> str:
    signed = signing.Signer(salt=_DOWNLOAD_SALT).sign_object(
        {"p": project_id.hex, "g": generation}
    )
    return reverse("wire:download", kwargs={"signed": signed, "filename": filename})


def download_target(signed: str) -> tuple[uuid.UUID, int]:
    try:
        data = signing.Signer(salt=_DOWNLOAD_SALT).unsign_object(signed)
        return uuid.UUID(hex=data["p"]), int(data["g"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise ApplicationError(
            "This download link is not valid.", status=404, code="not_found"
        ) from exc
