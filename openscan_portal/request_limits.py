"""A cap on the request line that holds whatever WSGI server runs the portal.

gunicorn (gunicorn.conf.py) refuses longer lines before Django sees them; this
middleware answers the same 414 under any other server.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.encoding import escape_uri_path

# 1 MiB: a request line with one `filelist` per photo for 5,000 photos fits.
REQUEST_LINE_MAX = 1 << 20


def request_line_length(request: HttpRequest) -> int:
    """Bytes of ``METHOD path?query HTTP/1.1`` as sent (the
    path re-quoted, the query raw)."""
    query = request.META.get("QUERY_STRING", "")
    target = len(escape_uri_path(request.path)) + (1 + len(query) if query else 0)
    return len(request.method or "") + 1 + target + len(" HTTP/1.1")


class RequestLineLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request_line_length(request) > REQUEST_LINE_MAX:
            return JsonResponse(
                {
                    "error": f"The request line is longer than {REQUEST_LINE_MAX} "
                    "bytes; send fewer or shorter query parameters."
                },
                status=414,
            )
        return self.get_response(request)
