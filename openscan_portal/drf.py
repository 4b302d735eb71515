"""DRF glue: one error shape for every API failure."""

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.parsers import JSONParser as _JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from openscan_portal.exceptions import ApplicationError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Answer ``{"error": message, "code": code}`` (plus
    field details for bad input)."""
    if isinstance(exc, ApplicationError):
        response = Response({"error": exc.message, "code": exc.code}, status=exc.status)
        return response
    if isinstance(exc, ValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "message_dict") else exc.messages
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        first = _first_message(detail)
        response.data = {"error": first, "code": "invalid", "fields": detail}
    else:
        detail = getattr(exc, "detail", str(exc))
        response.data = {"error": str(detail), "code": getattr(detail, "code", "error")}
    return response


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            msg = _first_message(value)
            return msg if key == "non_field_errors" else f"{key}: {msg}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


class JSONParser(_JSONParser):
    """DRF's JSON parser, answering 400 for nesting too deep for Python's parser."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON nested too deeply.") from exc
