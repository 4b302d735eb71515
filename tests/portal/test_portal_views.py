"""The portal's HTML pages: who may see what, the actions, share links and CSRF."""

import io
import re
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from projects.models import Project
from tests.images import jpeg_bytes
from tests.portal.conftest import PASSWORD
from tests.portal.conftest import done_project as _done_project
from tokens.models import CreditLedgerEntry

pytestmark = pytest.mark.django_db


PRIVATE_PAGES = [
    reverse("projects:list"),
    reverse("projects:new"),
    reverse("tokens:detail"),
]


@pytest.mark.parametrize("url", PRIVATE_PAGES)
def test_pages_need_login(client: Client, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_project_pages_need_login(client: Client, make_person) -> None:
    _owner, token = make_person()
    project = _done_project(token)

    for url in (
        reverse("projects:detail", kwargs={"project_id": project.id}),
        reverse(
            "projects:file", kwargs={"project_id": project.id, "name": "model.glb"}
        ),
        reverse(
            "projects:photo", kwargs={"project_id": project.id, "name": "IMG_0001.jpg"}
        ),
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("account_login")), url


def test_home_for_visitors_and_people(client: Client, make_person) -> None:
    assert "Create a free account" in client.get("/").content.decode()
    person, _token = make_person()
    assert person.get("/").url == reverse("projects:list")


def test_list_shows_only_own_projects(make_person) -> None:
    owner, token = make_person()
    _other, other_token = make_person()
    _done_project(token, name="mine.zip")
    _done_project(other_token, name="theirs.zip")

    page = owner.get(reverse("projects:list")).content.decode()

    assert "mine.zip" in page
    assert "theirs.zip" not in page


def test_detail_shows_viewer_downloads_and_config(make_person) -> None:
    owner, token = make_person()
    project = _done_project(token)

    response = owner.get(reverse("projects:detail", kwargs={"project_id": project.id}))

    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="viewer-config"' in page
    assert "model_preview.glb" in page
    assert response.context["viewer_config"]["model"].endswith(
        "/files/model_preview.glb"
    )
    assert [d["name"] for d in response.context["downloads"]] == [
        "result.zip",
        "model.glb",
        "model_preview.glb",
        "cameras.json",
    ]
    # Nothing is loaded from another origin (a random token may well spell "cdn").
    assert not re.search(r'<(script|img)[^>]+src="(https?:)?//', page)
    assert not re.search(r'<link[^>]+href="(https?:)?//', page)


@pytest.mark.parametrize(
    ("url_name", "kwargs"),
    [
        ("projects:detail", {}),
        ("projects:file", {"name": "model.glb"}),
        ("projects:photo", {"name": "IMG_0001.jpg"}),
    ],
)
def test_someone_elses_project_is_404(make_person, url_name: str, kwargs: dict) -> None:
    _owner, token = make_person()
    intruder, _other = make_person()
    project = _done_project(token)

    response = intruder.get(
        reverse(url_name, kwargs={"project_id": project.id, **kwargs})
    )

    assert response.status_code == 404


@pytest.mark.parametrize("action", ["start", "reset", "delete", "cancel"])
def test_someone_elses_project_cannot_be_changed(make_person, action: str) -> None:
    _owner, token = make_person()
    intruder, _other = make_person()
    project = _done_project(token)

    response = intruder.post(
        reverse("projects:action", kwargs={"project_id": project.id, "action": action})
    )

    assert response.status_code == 404
    project.refresh_from_db()
    assert project.status == Project.Status.DONE


def test_owner_streams_viewer_files_and_photos(make_person) -> None:
    owner, token = make_person()
    project = _done_project(token)

    glb = owner.get(
        reverse(
            "projects:file",
            kwargs={"project_id": project.id, "name": "model_preview.glb"},
        )
    )
    photo = owner.get(
        reverse(
            "projects:photo", kwargs={"project_id": project.id, "name": "IMG_0002.jpg"}
        )
    )

    assert glb.status_code == 200
    assert b"".join(glb.streaming_content) == b"glTF-preview"
    assert glb["Content-Type"] == "model/gltf-binary"
    assert photo.status_code == 200
    assert photo.content == jpeg_bytes(seed=2)
    assert photo["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize(
    "name", ["result.zip", "input-1.zip", "..%2Fmodel.glb", "report.json"]
)
def test_viewer_files_are_a_fixed_list(make_person, name: str) -> None:
    owner, token = make_person()
    project = _done_project(token)

    response = owner.get(f"/projects/{project.id}/files/{name}")

    assert response.status_code == 404


@pytest.mark.parametrize(
    "name",
    ["IMG_9999.jpg", "notes.txt", "..%2F..%2Fsecret.jpg", "other%2FIMG_0001.jpg"],
)
def test_photo_names_are_checked(make_person, name: str) -> None:
    owner, token = make_person()
    project = _done_project(token)

    response = owner.get(f"/projects/{project.id}/photos/{name}")

    assert response.status_code == 404


def test_share_link_is_off_by_default_then_on_then_revoked(
    client: Client, make_person
) -> None:
    owner, token = make_person()
    project = _done_project(token)
    assert project.share_key == ""

    # when: the owner turns sharing on
    owner.post(
        reverse("projects:share", kwargs={"project_id": project.id}), {"enabled": "on"}
    )
    project.refresh_from_db()
    key = project.share_key

    # then: anyone with the link sees the viewer and its files, without an account
    page = client.get(reverse("projects:shared", kwargs={"share_key": key}))
    assert page.status_code == 200
    assert 'id="viewer-config"' in page.content.decode()
    assert page["Referrer-Policy"] == "no-referrer"
    assert page.context["viewer_config"]["model"] == f"/s/{key}/files/model_preview.glb"
    assert client.get(f"/s/{key}/files/model_preview.glb").status_code == 200
    assert "Downloads" not in page.content.decode()
    # the photos are not part of a link made without asking for them
    assert client.get(f"/s/{key}/photos/IMG_0001.jpg").status_code == 404
    assert page.context["viewer_config"]["photo_base"] == ""
    panel = owner.get(reverse("projects:detail", kwargs={"project_id": project.id}))
    assert "original photos are <strong>not</strong> shared" in panel.content.decode()

    # when: the owner revokes it, the old link stops working
    owner.post(
        reverse("projects:share", kwargs={"project_id": project.id}), {"enabled": ""}
    )
    assert (
        client.get(reverse("projects:shared", kwargs={"share_key": key})).status_code
        == 404
    )
    assert client.get(f"/s/{key}/files/model_preview.glb").status_code == 404


def test_share_link_with_photos_is_the_owners_explicit_choice(
    client: Client, make_person
) -> None:
    owner, token = make_person()
    project = _done_project(token)
    share = reverse("projects:share", kwargs={"project_id": project.id})
    form = owner.get(reverse("projects:detail", kwargs={"project_id": project.id}))
    assert 'name="photos" id="share-photos"' in form.content.decode()
    assert "checked" not in form.content.decode().split('id="share-photos"')[1][:20]

    owner.post(share, {"enabled": "on", "photos": "on"})

    project.refresh_from_db()
    key = project.share_key
    assert project.share_photos is True
    page = client.get(reverse("projects:shared", kwargs={"share_key": key}))
    assert page.context["viewer_config"]["photo_base"] == f"/s/{key}/photos/__NAME__"
    photo = client.get(f"/s/{key}/photos/IMG_0002.jpg")
    assert photo.status_code == 200
    assert photo.content == jpeg_bytes(seed=2)
    panel = owner.get(reverse("projects:detail", kwargs={"project_id": project.id}))
    assert "<strong>and open the original photos</strong>" in panel.content.decode()

    # revoking and sharing again without the box: the photos are private again
    owner.post(share, {"enabled": ""})
    owner.post(share, {"enabled": "on"})
    project.refresh_from_db()
    assert project.share_photos is False
    assert client.get(f"/s/{project.share_key}/photos/IMG_0002.jpg").status_code == 404


def test_someone_else_cannot_share_a_project(make_person) -> None:
    _owner, token = make_person()
    intruder, _other = make_person()
    project = _done_project(token)

    response = intruder.post(
        reverse("projects:share", kwargs={"project_id": project.id}), {"enabled": "on"}
    )

    assert response.status_code == 404
    project.refresh_from_db()
    assert project.share_key == ""


def test_unknown_share_key_is_404(client: Client) -> None:
    assert client.get("/s/nope/").status_code == 404


def test_delete_refunds_and_redirects(make_person) -> None:
    owner, token = make_person()
    project = Project.objects.create(
        token=token, name="waiting.zip", photos=2, filesize=500, parts=1
    )

    response = owner.post(
        reverse(
            "projects:action", kwargs={"project_id": project.id, "action": "delete"}
        )
    )

    assert response.status_code == 302
    assert response.url == reverse("projects:list")
    assert not Project.objects.filter(pk=project.pk).exists()


def test_cancel_of_a_finished_project_explains(make_person) -> None:
    owner, token = make_person()
    project = _done_project(token)

    response = owner.post(
        reverse(
            "projects:action", kwargs={"project_id": project.id, "action": "cancel"}
        ),
        follow=True,
    )

    assert (
        "only queued or running projects can be cancelled" in response.content.decode()
    )


@pytest.mark.parametrize(
    ("url_name", "kwargs", "data"),
    [
        ("tokens:regenerate", {}, {}),
        ("projects:share", {"project_id": None}, {"enabled": "on"}),
        ("projects:action", {"project_id": None, "action": "delete"}, {}),
    ],
)
def test_forms_need_csrf(make_person, url_name: str, kwargs: dict, data: dict) -> None:
    owner, token = make_person(csrf=True)
    project = _done_project(token)
    kwargs = {k: (project.id if v is None else v) for k, v in kwargs.items()}

    response = owner.post(reverse(url_name, kwargs=kwargs), data)

    assert response.status_code == 403
    project.refresh_from_db()
    assert project.share_key == ""
    token.refresh_from_db()


def test_regenerate_shows_new_key_once_and_old_stops(make_person, api_client) -> None:
    owner, token = make_person()
    old_hash = token.key_hash

    response = owner.post(reverse("tokens:regenerate"), follow=True)

    token.refresh_from_db()
    assert token.key_hash != old_hash
    key = response.context["new_key"]
    assert key.endswith(token.key_hint)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api_client.get("/api/v1/token/").status_code == 200
    assert owner.get(reverse("tokens:detail")).context["new_key"] is None


def test_regenerated_key_is_shown_in_its_response_and_never_stored_in_the_session(
    make_person,
) -> None:
    from django.contrib.sessions.models import Session

    owner, token = make_person()

    response = owner.post(reverse("tokens:regenerate"))

    token.refresh_from_db()
    key = response.context["new_key"]
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert key.endswith(token.key_hint)
    assert key in response.content.decode()
    assert "New key made" in response.content.decode()
    stored = [s.get_decoded() for s in Session.objects.all()]
    assert stored
    assert all(key not in repr(data) for data in stored)


def test_token_page_shows_balance_limits_and_ledger(make_person) -> None:
    owner, token = make_person(credit=5_000_000_000)

    response = owner.get(reverse("tokens:detail"))

    page = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert "5.0 GB" in page
    assert token.masked_key in page
    assert "openscan-upload" in page
    assert list(response.context["ledger"]) == list(
        CreditLedgerEntry.objects.filter(token=token)
    )


def test_upload_page_carries_limits_for_the_browser(make_person) -> None:
    owner, token = make_person(credit=7_000)

    response = owner.get(reverse("projects:new"))

    config = response.context["upload_config"]
    assert (config["credit"], config["limit_photos"], config["public_token"]) == (
        7_000,
        token.limit_photos,
        False,
    )
    assert 'id="upload-config"' in response.content.decode()
    assert 'name="research_consent" value="no" checked' in response.content.decode()


def test_account_without_token_is_sent_to_token_page(client: Client) -> None:
    user = get_user_model().objects.create_user(
        username="new", email="new@example.org", password=PASSWORD
    )
    client.force_login(user)

    assert client.get(reverse("projects:new")).url == reverse("tokens:detail")
    assert "No token yet" in client.get(reverse("tokens:detail")).content.decode()


def test_a_photo_renamed_by_ingest_opens_by_its_name_in_the_zip(make_person) -> None:
    # given: two photos with the same name in two folders, as cameras.json names them
    owner, token = make_person()
    project = _done_project(token)
    photos = io.BytesIO()
    with zipfile.ZipFile(photos, "w") as zf:
        zf.writestr("left/IMG 1.jpg", jpeg_bytes(seed=1))
        zf.writestr("right/IMG 1.jpg", jpeg_bytes(seed=2))
    default_storage.delete(project.input_path)
    default_storage.save(project.input_path, ContentFile(photos.getvalue()))
    url = reverse(
        "projects:photo", kwargs={"project_id": project.id, "name": "right/IMG 1.jpg"}
    )
    # when
    photo = owner.get(url)
    # then
    assert photo.status_code == 200
    assert photo.content == jpeg_bytes(seed=2)


def test_the_status_panel_polls_the_status_endpoint(make_person) -> None:
    owner, token = make_person()
    project = _done_project(token)

    page = owner.get(reverse("projects:detail", kwargs={"project_id": project.id}))

    assert page.context["status_config"]["api"] == reverse(
        "projects-api:status", kwargs={"project_id": project.id}
    )
