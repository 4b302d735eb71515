"""Absolute links to the portal: the configured public URL first, else the request's."""

from django.conf import settings
from django.http import HttpRequest

# E-mails and other links built outside a request on an unconfigured checkout.
_LOCAL_BASE = "http://127.0.0.1:8000"


def public_url(request: HttpRequest | None, path: str) -> str:
    """``path`` made absolute with OPENSCAN_PUBLIC_URL, the request's host, or local."""
    base = settings.OPENSCAN_PUBLIC_URL.rstrip("/")
    if base:
        return base + path
    if request is None:
        return _LOCAL_BASE + path
    return request.build_absolute_uri(path)
