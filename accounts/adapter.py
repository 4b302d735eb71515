from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.urls import reverse

from tokens.services import NEW_KEY_SESSION, token_for_verified_user


class AccountAdapter(DefaultAccountAdapter):
    """Issues the private token when the address is verified, and not before."""

    def confirm_email(self, request: HttpRequest, email_address: EmailAddress) -> bool:
        confirmed = super().confirm_email(request, email_address)
        if confirmed and email_address.verified:
            _token, key = token_for_verified_user(user=email_address.user)
            if key:
                request.session[NEW_KEY_SESSION] = key
        return confirmed

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
