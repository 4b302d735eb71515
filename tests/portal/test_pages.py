"""Account pages, landing costs, token commands, list search/progress/times, credit
formatting and share-link unfurling (issue 12, items 9-12)."""

import re
from datetime import timedelta
from pathlib import Path

import pygltflib
import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from openscan_portal.units import bytes_size
from projects.models import Project
from projects.templatetags.portal import ago
from tests.portal.conftest import PASSWORD, done_project
from tokens.models import CreditLedgerEntry
from tokens.services import credit_adjust

pytestmark = pytest.mark.django_db

DEMO_GLB = Path(settings.BASE_DIR) / "static" / "projects" / "demo" / "statuette.glb"


def _unverified(email: str = "late@example.org") -> None:
    user = get_user_model().objects.create_user(
        username=email.split("@")[0], email=email, password=PASSWORD
    )
    EmailAddress.objects.create(user=user, email=email, verified=False, primary=True)


# ---------------------------------------------------------------- item 9


def test_password_reset_walks_through_styled_pages_and_names_the_contact(
    client: Client, make_person, mailoutbox: list, settings
) -> None:
    settings.OPENSCAN_CONTACT_EMAIL = "help@scan.example"
    person, token = make_person()
    email = token.email
    person.logout()

    page = client.get(reverse("account_reset_password")).content.decode()
    assert 'class="auth"' in page
    assert "Send me a reset link" in page
    assert 'href="mailto:help@scan.example"' in page
    assert "contact us" not in page.lower()

    done = client.post(reverse("account_reset_password"), {"email": email}, follow=True)
    assert "Check your e-mail" in done.content.decode()
    assert 'href="mailto:help@scan.example"' in done.content.decode()
    link = re.search(
        r"https?://[^/\s]+(/accounts/password/reset/key/\S+/)", mailoutbox[-1].body
    ).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    changed = client.post(
        form.redirect_chain[-1][0] if form.redirect_chain else link,
        {"password1": "new-Turntable-2042", "password2": "new-Turntable-2042"},
        follow=True,
    )
    assert "Password changed" in changed.content.decode()
    assert (
        get_user_model().objects.get(email=email).check_password("new-Turntable-2042")
    )


def test_without_a_contact_setting_no_contact_is_offered(
    client: Client, settings
) -> None:
    settings.OPENSCAN_CONTACT_EMAIL = ""
    page = client.get(reverse("account_reset_password")).content.decode()
    assert "mailto:" not in page
    assert "contact us" not in page.lower()


def test_login_page_offers_forgot_password_once(client: Client) -> None:
    page = client.get(reverse("account_login")).content.decode()
    assert page.count("Forgot your password?") == 1


@pytest.mark.parametrize(
    "name",
    [
        "account_change_password",
        "account_set_password",
        "account_email",
        "account_logout",
    ],
)
def test_account_pages_a_person_reaches_are_the_portals(make_person, name: str) -> None:
    person, _token = make_person()
    response = person.get(reverse(name), follow=True)
    assert response.status_code == 200
    assert 'class="auth"' in response.content.decode()


def test_resend_verification_sends_a_new_link_once_per_window(
    client: Client, mailoutbox: list
) -> None:
    _unverified("late@example.org")
    page = client.get(reverse("account_email_verification_sent")).content.decode()
    assert 'action="/accounts/verification/resend/"' in page

    first = client.post(
        reverse("accounts:resend-verification"),
        {"email": "Late@example.org"},
        follow=True,
    )
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["late@example.org"]
    assert "/accounts/confirm-email/" in mailoutbox[0].body
    assert "a new link is on its way" in first.content.decode()

    # a second press inside allauth's window sends nothing more (the first link works)
    client.post(reverse("accounts:resend-verification"), {"email": "late@example.org"})
    assert len(mailoutbox) == 1


def test_resend_verification_says_the_same_for_unknown_and_verified_addresses(
    client: Client, make_person, mailoutbox: list
) -> None:
    _person, token = make_person()
    answers = [
        re.search(
            r'<ul class="flash".*?</ul>',
            client.post(
                reverse("accounts:resend-verification"), {"email": email}, follow=True
            ).content.decode(),
            re.S,
        )
        .group(0)
        .replace(email, "ADDRESS")
        for email in ("nobody@example.org", token.email)
    ]
    assert mailoutbox == []
    assert answers[0] == answers[1]
    assert "a new link is on its way" in answers[0]


def test_resend_verification_refuses_a_malformed_address(client: Client) -> None:
    response = client.post(
        reverse("accounts:resend-verification"), {"email": "not-an-address"}
    )
    assert response.status_code == 400
    assert "Enter the e-mail address you signed up with." in response.content.decode()


def test_logging_in_unverified_sends_the_link_again(
    client: Client, mailoutbox: list
) -> None:
    _unverified("late@example.org")
    response = client.post(
        reverse("account_login"),
        {"login": "late@example.org", "password": PASSWORD},
        follow=True,
    )
    assert "Check your e-mail" in response.content.decode()
    assert 'id="resend-verification"' in response.content.decode()
    assert [m.to for m in mailoutbox] == [["late@example.org"]]


# ---------------------------------------------------------------- item 10


def test_landing_page_shows_costs_from_settings_and_the_demo_model(
    client: Client, settings
) -> None:
    settings.OPENSCAN_SIGNUP_CREDIT = 7_000_000_000
    settings.OPENSCAN_PUBLIC_DAILY_QUOTA = 12_000_000_000
    page = client.get(reverse("projects:home")).content.decode()
    assert re.search(r'id="cost-signup">7\.0 GB<', page)
    assert re.search(r'id="cost-public">12\.0 GB a day<', page)
    assert settings.OPENSCAN_PUBLIC_TOKEN in page
    assert '"model": "/static/projects/demo/statuette.glb"' in page
    assert '"cameras": ""' in page
    assert "camera to see its photo" not in page  # the demo has no cameras


def test_the_demo_model_is_a_small_draco_glb(client: Client) -> None:
    data = DEMO_GLB.read_bytes()
    assert data[:4] == b"glTF"
    assert len(data) < 300_000
    gltf = pygltflib.GLTF2.load_from_bytes(data)
    assert "KHR_draco_mesh_compression" in gltf.extensionsRequired
    # ...so the landing page names the decoder's folder for the viewer
    page = client.get(reverse("projects:home")).content.decode()
    assert re.search(r'"draco_path": "/static/[^"]*draco/[^"]*/"', page)


def test_token_page_gives_the_rig_cli_and_curl_commands(make_person) -> None:
    person, _token = make_person()
    page = person.get(reverse("tokens:detail")).content.decode()
    assert re.search(r'<code id="cmd-server">http://testserver/</code>', page)
    assert "pip install ./uploader" in page
    assert (
        "export OPENSCAN_SERVER=http://testserver OPENSCAN_TOKEN=osp_YOUR_TOKEN" in page
    )
    assert (
        'curl -H "Authorization: Bearer osp_YOUR_TOKEN" http://testserver/api/v1/token/'
        in page
    )
    assert page.count('data-copy="#cmd-') == 3  # the masked token is not copyable


# ---------------------------------------------------------------- item 11


def test_list_search_keeps_matching_names(make_person) -> None:
    person, token = make_person()
    Project.objects.create(
        token=token, name="red vase.zip", photos=2, filesize=10, parts=1
    )
    Project.objects.create(
        token=token, name="Blue Bowl.zip", photos=2, filesize=10, parts=1
    )
    page = person.get(reverse("projects:list"), {"q": "bowl"}).content.decode()
    assert "Blue Bowl.zip" in page
    assert "red vase.zip" not in page
    assert 'value="bowl"' in page
    empty = person.get(reverse("projects:list"), {"q": "teapot"}).content.decode()
    assert 'id="no-match"' in empty


def test_list_shows_progress_of_running_projects(make_person) -> None:
    person, token = make_person()
    project = Project.objects.create(
        token=token,
        name="vase.zip",
        photos=24,
        filesize=10,
        parts=1,
        status=Project.Status.PROCESSING,
        progress={"stage": "dense", "overall": 0.537, "fraction": 0.2},
    )
    page = person.get(reverse("projects:list")).content.decode()
    assert f'data-running="{project.id}"' in page
    assert '<progress max="100" value="53"' in page
    assert "53 % · Measuring depth" in page
    assert "just now" in page
    assert "0\xa0minutes" not in page


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(seconds=0), "just now"),
        (timedelta(seconds=-5), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=2, seconds=5), "2 min ago"),
        (timedelta(hours=3), "3 h ago"),
    ],
)
def test_times_read_like_people_say_them(age: timedelta, text: str) -> None:
    assert ago(timezone.now() - age) == text


def test_old_times_are_dates() -> None:
    old = timezone.now() - timedelta(days=400)
    local = timezone.localtime(old)
    assert ago(old) == f"{local.day} {local:%b %Y}"


def test_one_unit_system_in_portal_and_admin(make_person, admin_client: Client) -> None:
    assert bytes_size(4_801_430_660) == "4.8 GB"
    person, token = make_person(credit=0)
    credit_adjust(token=token, amount=4_801_430_660, reason="grant")
    assert ">4.8 GB<" in person.get(reverse("tokens:detail")).content.decode()
    change = admin_client.get(reverse("admin:tokens_token_change", args=[token.pk]))
    assert ">4.8 GB<" in change.content.decode()
    adjust = admin_client.get(reverse("admin:tokens_token_adjust", args=[token.pk]))
    assert "(4.8 GB)" in adjust.content.decode()


def test_ledger_project_references_are_links(make_person, admin_client: Client) -> None:
    person, token = make_person()
    kept = done_project(token, name="kept.zip")
    CreditLedgerEntry.objects.filter(token=token).update(project_ref="")
    for project_ref in (str(kept.id), "00000000-0000-0000-0000-000000000001"):
        credit_adjust(token=token, amount=-5, reason=f"charge {project_ref[-4:]}")
        CreditLedgerEntry.objects.filter(token=token).order_by("-id").filter(
            reason=f"charge {project_ref[-4:]}"
        ).update(project_ref=project_ref)
    page = person.get(reverse("tokens:detail")).content.decode()
    assert f'href="/projects/{kept.id}/">charge' in page
    assert "charge 0001</td>" in page  # a deleted project: named, not linked
    ledger = admin_client.get(reverse("admin:tokens_creditledgerentry_changelist"))
    assert (
        reverse("admin:projects_project_change", args=[kept.id])
        in ledger.content.decode()
    )


# ---------------------------------------------------------------- item 12


def test_share_page_carries_open_graph_and_twitter_meta(
    client: Client, make_person
) -> None:
    owner, token = make_person()
    project = done_project(token, name="red vase.zip")
    owner.post(
        reverse("projects:share", kwargs={"project_id": project.id}), {"enabled": "on"}
    )
    project.refresh_from_db()
    url = f"http://testserver/s/{project.share_key}/"
    page = client.get(
        reverse("projects:shared", kwargs={"share_key": project.share_key})
    ).content.decode()
    assert '<meta property="og:title" content="red vase">' in page
    assert f'<meta property="og:url" content="{url}">' in page
    assert "from 2 photos" in re.search(
        r'og:description" content="([^"]+)"', page
    ).group(1)
    assert '<meta name="twitter:card" content="summary">' in page  # no thumbnail yet
    assert "og:image" not in page

    # with a thumbnail: an absolute og:image served through the share link
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    default_storage.save(f"{project.result_path}/thumbnail.png", ContentFile(png))
    project.progress["files"]["thumbnail.png"] = len(png)
    project.save(update_fields=["progress"])
    page = client.get(
        reverse("projects:shared", kwargs={"share_key": project.share_key})
    ).content.decode()
    image = re.search(r'<meta property="og:image" content="([^"]+)">', page).group(1)
    assert image == f"{url}files/thumbnail.png"
    assert f'<meta name="twitter:image" content="{image}">' in page
    fetched = client.get(image.removeprefix("http://testserver"))
    assert fetched.status_code == 200
    assert fetched["Content-Type"] == "image/png"
    assert b"".join(fetched.streaming_content) == png


def test_password_change_page_changes_the_password(make_person) -> None:
    person, token = make_person()
    page = person.get(reverse("account_change_password")).content.decode()
    assert page.count("Forgot the current one?") == 1
    response = person.post(
        reverse("account_change_password"),
        {
            "oldpassword": PASSWORD,
            "password1": "new-Turntable-2042",
            "password2": "new-Turntable-2042",
        },
    )
    assert response.status_code == 302
    assert (
        get_user_model()
        .objects.get(email=token.email)
        .check_password("new-Turntable-2042")
    )
