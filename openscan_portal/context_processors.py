"""Values every portal page may show."""

from django.conf import settings
from django.http import HttpRequest


def portal(request: HttpRequest) -> dict[str, str]:
    return {"contact_email": settings.OPENSCAN_CONTACT_EMAIL}
