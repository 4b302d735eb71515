"""Links in mails point where the portal is reached, and mails speak as the product.

A real SMTP server receives them (aiosmtpd) and a live server answers over HTTP,
so the address the links must carry is a real host and port.
"""

import email
import re
from email import policy
from urllib.parse import urlsplit

import pytest
import requests
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model

from projects.management.commands.runportal import mail_links_note
from projects.models import Project
from projects.services import notifications
from tests.projects.test_lifecycle import smtp_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC = "https://portal.example.org"  # what smtp_server configures


def _text(envelope) -> str:
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    return "\n".join(
        part.get_content()
        for part in message.walk()
        if part.get_content_type() in ("text/plain", "text/html")
    )


def _links(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"'<>]+", text)


def test_model_ready_mail_links_to_the_address_the_site_is_served_on(
    live_server,
    smtp_server,  # noqa: F811 - the fixture imported above
    settings,
    private_token,
):
    settings.OPENSCAN_PUBLIC_URL = ""
    key = private_token[1]
    created = requests.post(
        f"{live_server.url}/api/v1/projects/",
        json={"name": "vase.zip", "photos": 3, "filesize": 1000, "parts": 1},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    Project.objects.filter(pk=project_id).update(
        status="done", result_path="r", progress={"files": {"result.zip": 1234}}
    )

    assert notifications.notification_send(project_id=project_id, attempt=1) == "sent"

    text = _text(smtp_server.messages[0])
    served = urlsplit(live_server.url).netloc
    assert f"{live_server.url}/projects/{project_id}/" in text
    links = _links(text)
    assert links
    assert {urlsplit(link).netloc for link in links} == {served}
    assert "127.0.0.1:8000" not in text


def _request_reset(base: str, address: str) -> None:
    session = requests.Session()
    form = f"{base}/accounts/password/reset/"
    session.get(form, timeout=10).raise_for_status()
    answer = session.post(
        form,
        data={"email": address, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": form},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text[:500]


def test_password_reset_mail_greets_with_the_product_name_and_links_right(
    live_server,
    smtp_server,  # noqa: F811 - the fixture imported above
    settings,
):
    user = get_user_model().objects.create_user(
        username="ada", email="ada@example.org", password="a long pass phrase 1"
    )
    EmailAddress.objects.create(
        user=user, email=user.email, verified=True, primary=True
    )

    settings.OPENSCAN_PUBLIC_URL = ""
    _request_reset(live_server.url, user.email)
    settings.OPENSCAN_PUBLIC_URL = PUBLIC
    _request_reset(live_server.url, user.email)

    served, configured = (_text(m) for m in smtp_server.messages)
    for text, base in ((served, live_server.url), (configured, PUBLIC)):
        assert "Hello from OpenScan Portal!" in text
        assert "Thank you for using OpenScan Portal!" in text
        (link,) = _links(text)
        assert link.startswith(f"{base}/accounts/password/reset/key/")
    assert urlsplit(live_server.url).netloc not in configured


def test_runportal_says_where_mail_links_lead(settings):
    served = "http://127.0.0.1:18200/"
    settings.OPENSCAN_PUBLIC_URL = ""
    assert served in mail_links_note(served)
    settings.OPENSCAN_PUBLIC_URL = PUBLIC
    assert PUBLIC in mail_links_note(served)
    assert served not in mail_links_note(served)
