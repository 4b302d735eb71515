"""Sign-up with a verified e-mail address gives the account its private token."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tokens.models import Token
from tokens.services import token_issue

pytestmark = pytest.mark.django_db

PASSWORD = "turntable-Vase-2041"


def _sign_up(client: Client, email: str = "ada@example.org") -> None:
    response = client.post(
        reverse("account_signup"),
        {
            "forename": "Ada",
            "surname": "Lovelace",
            "email": email,
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]


def _confirm_link(mailoutbox: list, email: str) -> str:
    message = next(m for m in mailoutbox if email in m.to)
    return re.search(
        r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", message.body
    ).group(1)


def test_sign_up_issues_no_token_before_verification(
    client: Client, mailoutbox: list
) -> None:
    _sign_up(client)

    user = get_user_model().objects.get(email="ada@example.org")
    assert (user.first_name, user.last_name) == ("Ada", "Lovelace")
    assert Token.objects.filter(user=user).count() == 0
    assert len(mailoutbox) == 1
    # and logging in is refused until the address is verified
    response = Client().post(
        reverse("account_login"), {"login": "ada@example.org", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")


def test_verification_link_issues_token_shown_once(
    client: Client, mailoutbox: list, settings
) -> None:
    settings.OPENSCAN_SIGNUP_CREDIT = 123_000
    _sign_up(client)
    link = _confirm_link(mailoutbox, "ada@example.org")

    response = client.post(link)

    assert response.status_code == 302
    assert response.url == reverse("tokens:detail")
    token = Token.objects.get(user__email="ada@example.org")
    assert (token.kind, token.credit, token.forename, token.surname) == (
        "private",
        123_000,
        "Ada",
        "Lovelace",
    )
    page = client.get(reverse("tokens:detail")).content.decode()
    key = re.search(r'id="token-key"[^>]*>(osp_\w+)<', page).group(1)
    assert key[-4:] == token.key_hint
    again = client.get(reverse("tokens:detail")).content.decode()
    assert key not in again
    assert token.masked_key in again


def test_verification_adopts_token_from_request_token(
    client: Client, mailoutbox: list
) -> None:
    """/requestToken and sign-up lead to the same token; the
    credit is not granted twice."""
    earlier, _key = token_issue(
        email="ada@example.org", forename="Ada", surname="L", credit=5
    )
    _sign_up(client)

    client.post(_confirm_link(mailoutbox, "ada@example.org"))

    earlier.refresh_from_db()
    assert earlier.user is not None
    assert earlier.user.email == "ada@example.org"
    assert Token.objects.filter(email__iexact="ada@example.org").count() == 1


def _admin_login(client: Client, password: str, username: str = "boss"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
    )


def test_admin_login_locks_out_after_5_failures_like_the_portal_login() -> None:
    get_user_model().objects.create_superuser("boss", "boss@example.org", PASSWORD)
    client = Client()

    failures = [_admin_login(client, f"wrong-{i}") for i in range(5)]
    locked = _admin_login(client, PASSWORD)

    assert all(
        "Please enter the correct username" in r.content.decode() for r in failures
    )
    assert locked.status_code == 200
    assert "Too many failed login attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # an untouched login name still gets in: the lock is per name (and per address)
    get_user_model().objects.create_superuser("other", "o@example.org", PASSWORD)
    assert _admin_login(client, PASSWORD, username="other").status_code == 302


def test_admin_and_portal_failures_share_the_per_address_limit() -> None:
    get_user_model().objects.create_superuser("boss", "boss@example.org", PASSWORD)
    client = Client()

    for i in range(10):  # 10 per minute per address, spread over login names
        _admin_login(client, "wrong", username=f"nobody{i}")
    portal = client.post(
        reverse("account_login"), {"login": "boss@example.org", "password": PASSWORD}
    )

    assert "Too many failed login attempts" in portal.content.decode()
    assert "_auth_user_id" not in client.session
