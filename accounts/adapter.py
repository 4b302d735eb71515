from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress, EmailConfirmation
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.urls import reverse

from openscan_portal.public_url import public_url, public_url_rebase
from tokens.services import NEW_KEY_SESSION, token_for_verified_user

PRODUCT_NAME = "OpenScan Portal"


@dataclass(frozen=True)
class _Site:
    """What allauth's mails call ``current_site``: without django.contrib.sites it
    would be the request's host ("Hello from 127.0.0.1:18200!")."""

    name: str
    domain: str


class AccountAdapter(DefaultAccountAdapter):
    """Issues the private token when the address is verified, and not before."""

    def confirm_email(self, request: HttpRequest, email_address: EmailAddress) -> bool:
        confirmed = super().confirm_email(request, email_address)
        if confirmed and email_address.verified:
            _token, key = token_for_verified_user(user=email_address.user)
            if key:
                request.session[NEW_KEY_SESSION] = key
        return confirmed

    def send_mail(
        self, template_prefix: str, email: str, context: dict[str, Any]
    ) -> None:
        domain = urlsplit(public_url(self.request, "/")).netloc
        super().send_mail(
            template_prefix,
            email,
            {"current_site": _Site(name=PRODUCT_NAME, domain=domain), **context},
        )

    # Links in mails: OPENSCAN_PUBLIC_URL, else the address the request came to.
    def get_reset_password_from_key_url(self, key: str) -> str:
        return public_url_rebase(
            self.request, super().get_reset_password_from_key_url(key)
        )

    def get_email_confirmation_url(
        self, request: HttpRequest, emailconfirmation: EmailConfirmation
    ) -> str:
        return public_url_rebase(
            request, super().get_email_confirmation_url(request, emailconfirmation)
        )

    def get_email_verification_redirect_url(self, email_address: EmailAddress) -> str:
        # Straight to the page that shows the new token once.
        return reverse("tokens:detail")

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        if request.session.get(NEW_KEY_SESSION):
            return reverse("tokens:detail")
        return super().get_login_redirect_url(request)

    def get_signup_redirect_url(self, request: HttpRequest) -> str:
        # Used when the verification link logs the new account in: show the token.
        return reverse("tokens:detail")


def user_display(user: AbstractBaseUser) -> str:
    """How pages and messages name a person: their e-mail address (usernames are
    generated)."""
    return getattr(user, "email", "") or str(user)
