"""S3 (and S3-compatible servers): presigned POST or PUT targets for direct uploads."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.files.storage import default_storage
from django.utils import timezone
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from projects.storage.direct import DirectUpload, link_seconds

# SigV4 presigned URLs live at most 7 days.
S3_PRESIGN_MAX_SECONDS = 7 * 24 * 3600


def _credential_expiry(client: Any) -> datetime.datetime | None:
    # A URL signed with temporary (role/STS) credentials stops working when they
    # expire, whatever its own expiry says.
    creds = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    expiry = getattr(creds, "_expiry_time", None)
    return expiry if isinstance(expiry, datetime.datetime) else None


def s3_direct_upload(name: str, *, method: str, max_size: int) -> DirectUpload:
    storage: S3Storage = default_storage  # type: ignore[assignment]  # by backend()
    client = storage.connection.meta.client
    key = storage._normalize_name(clean_name(name))  # the key S3Storage itself uses
    seconds = link_seconds(S3_PRESIGN_MAX_SECONDS)
    limit = max_size
    expires_at = timezone.now() + datetime.timedelta(seconds=seconds)
    creds_expiry = _credential_expiry(client)
    if creds_expiry is not None:
        expires_at = min(expires_at, creds_expiry)
    if method == "PUT":
        url = client.generate_presigned_url(
            "put_object",
            Params={"Bucket": storage.bucket_name, "Key": key},
            ExpiresIn=seconds,
            HttpMethod="PUT",
        )
        return DirectUpload(
            method="PUT",
            url=url,
            encoding="raw",
            expires_at=expires_at,
            max_size=limit,
            one_time=False,
        )
    post = client.generate_presigned_post(
        Bucket=storage.bucket_name,
        Key=key,
        Conditions=[["content-length-range", 1, limit]],
        ExpiresIn=seconds,
    )
    return DirectUpload(
        method="POST",
        url=post["url"],
        encoding="multipart",
        fields=dict(post["fields"]),
        expires_at=expires_at,
        max_size=limit,
        one_time=False,
    )
