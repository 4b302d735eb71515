"""Absolute links to the portal: the configured public URL first, else the request's."""

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

# Links built outside a request on an unconfigured checkout with nothing recorded.
_LOCAL_BASE = "http://127.0.0.1:8000"


def site_base(request: HttpRequest) -> str:
    """The scheme and host the request reached the portal at, e.g.
    ``http://127.0.0.1:18200``: recorded where links are built later, without it."""
    return f"{request.scheme}://{request.get_host()}"


def public_url(request: HttpRequest | None, path: str, *, recorded: str = "") -> str:
    """``path`` made absolute with OPENSCAN_PUBLIC_URL, else the request's address,
    else ``recorded`` (a site_base kept from an earlier request), else local."""
    base = settings.OPENSCAN_PUBLIC_URL.rstrip("/")
    if base:
        return base + path
    if request is not None:
        return request.build_absolute_uri(path)
    return (recorded or _LOCAL_BASE) + path


def public_url_rebase(request: HttpRequest | None, url: str) -> str:
    """An absolute URL another library built, on the same base as the portal's links
    (allauth forces https when DEBUG is off, whatever the site is served on)."""
    parts = urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    return public_url(request, parts.path + query)
