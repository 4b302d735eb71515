from typing import Any

from allauth.account.adapter import get_adapter
from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest


class SignupForm(forms.Form):
    """The extra sign-up fields; allauth adds e-mail and password and calls
    ``signup``."""

    forename = forms.CharField(
        max_length=100,
        label="Forename",
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    surname = forms.CharField(
        max_length=100,
        label="Surname",
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )

    def signup(self, request: HttpRequest, user: AbstractBaseUser) -> None:
        user.first_name = self.cleaned_data["forename"].strip()  # type: ignore[attr-defined]  # auth.User
        user.last_name = self.cleaned_data["surname"].strip()  # type: ignore[attr-defined]  # auth.User
        user.save(update_fields=["first_name", "last_name"])


class AdminLoginForm(AdminAuthenticationForm):
    """The admin log-in, counted by allauth's ``login_failed`` limits like the portal's.

    Failures share the per-address limit with the portal log-in and lock the
    login name out for the same time; a right password inside the lock-out is
    refused too.
    """

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            self.user_cache = get_adapter(self.request).authenticate(
                self.request, username=username, password=password
            )
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data
