"""The page allauth lacks: sending the confirmation link again."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import services


class ResendForm(forms.Form):
    email = forms.EmailField()


@require_POST
def resend_verification(request: HttpRequest) -> HttpResponse:
    form = ResendForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "account/verification_sent.html",
            {"resend_error": "Enter the e-mail address you signed up with."},
            status=400,
        )
    services.verification_resend(request=request, email=form.cleaned_data["email"])
    # The same answer whether or not the address has an account (no enumeration).
    messages.info(
        request,
        f"If {form.cleaned_data['email']} waits for confirmation, a new link is on "
        "its way. Links are sent at most every few minutes; the older ones still work.",
    )
    return redirect("account_email_verification_sent")
