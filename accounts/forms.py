from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest


class SignupForm(forms.Form):
    """The extra sign-up fields; allauth adds e-mail and password and calls ``signup``."""

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
