"""Only the embed page may be framed by other sites; every other page keeps
X-Frame-Options DENY and frame-ancestors 'none' (clickjacking)."""

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.test import Client

from projects.models import Project
from projects.services import project_share

pytestmark = pytest.mark.django_db


def _frame_ancestors(response) -> str:
    policy = response["Content-Security-Policy"]
    return next(
        d.strip() for d in policy.split(";") if d.strip().startswith("frame-ancestors")
    )


@pytest.fixture
def shared_project(private_token) -> tuple[Project, Client]:
    token, _key = private_token
    user = get_user_model().objects.create_user(
        username="owner", email=token.email, password="turntable-Vase-2041"
    )
    EmailAddress.objects.create(
        user=user, email=token.email, verified=True, primary=True
    )
    token.user = user
    token.save(update_fields=["user"])
    project = Project.objects.create(
        token=token,
        name='vase "blue"',
        photos=24,
        filesize=1000,
        parts=1,
        status=Project.Status.DONE,
    )
    project_share(project=project, enabled=True)
    owner = Client()
    owner.force_login(user)
    return project, owner


def test_embed_page_is_frameable_and_nothing_else(shared_project) -> None:
    project, owner = shared_project
    anonymous = Client()
    embed = anonymous.get(f"/s/{project.share_key}/embed/")
    assert embed.status_code == 200
    assert "X-Frame-Options" not in embed
    assert _frame_ancestors(embed) == "frame-ancestors *"
    # the rest of the policy stays strict
    assert "script-src 'self'" in embed["Content-Security-Policy"]
    assert embed["Referrer-Policy"] == "no-referrer"
    assert b'id="viewer-config"' in embed.content
    assert b"topbar" not in embed.content  # just the viewer: no nav, no forms

    for response in (
        anonymous.get(f"/s/{project.share_key}/"),
        owner.get(f"/projects/{project.id}/"),
        owner.get("/projects/"),
        anonymous.get("/"),
    ):
        assert response.status_code == 200, response
        assert response["X-Frame-Options"] == "DENY"
        assert _frame_ancestors(response) == "frame-ancestors 'none'"


def test_share_page_and_the_owners_share_card_offer_the_embed_code(
    shared_project,
) -> None:
    project, owner = shared_project
    code = f'&lt;iframe src="http://testserver/s/{project.share_key}/embed/"'
    for page in (
        Client().get(f"/s/{project.share_key}/").content.decode(),
        owner.get(f"/projects/{project.id}/").content.decode(),
    ):
        assert code in page
        # a quote in the name stays inside the snippet's title attribute
        assert 'title="vase &amp;quot;blue&amp;quot; · 3D model"' in page


def test_no_embed_code_without_a_share_link_or_a_model(shared_project) -> None:
    project, owner = shared_project
    project.status = Project.Status.FAILED
    project.save(update_fields=["status"])
    assert b"embed-code" not in owner.get(f"/projects/{project.id}/").content
    project_share(project=project, enabled=False)
    project.status = Project.Status.DONE
    project.save(update_fields=["status"])
    assert b"embed-code" not in owner.get(f"/projects/{project.id}/").content


def test_embed_of_a_revoked_link_is_gone(shared_project) -> None:
    project, _owner = shared_project
    key = project.share_key
    project_share(project=project, enabled=False)
    assert Client().get(f"/s/{key}/embed/").status_code == 404
