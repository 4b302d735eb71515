"""Account actions the portal adds to allauth's."""

from allauth.account.internal.flows.email_verification import (
    consume_email_verification_rate_limit,
)
from allauth.account.models import EmailAddress
from django.http import HttpRequest


def verification_resend(*, request: HttpRequest, email: str) -> None:
    """Send a new confirmation link to ``email`` if an account waits for it.

    Says nothing about whether it did (no account enumeration); allauth's
    ``confirm_email`` rate limit (one mail per address every few minutes) keeps
    the button from becoming a mail cannon.
    """
    address = (
        EmailAddress.objects.filter(email__iexact=email.strip(), verified=False)
        .select_related("user")
        .first()
    )
    if (
        address is None
        or EmailAddress.objects.filter(user_id=address.user_id, verified=True).exists()
    ):
        return
    # Not allauth's send helper: its "sent to ..." message would tell who has an
    # account.
    if consume_email_verification_rate_limit(request, address.email):
        address.send_confirmation(request)
