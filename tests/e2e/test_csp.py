"""Every HTML page carries a strict Content-Security-Policy and breaks none of it.

Each page is loaded in Debian's Chromium, logged out, as a person and as an
admin; the browser reports every violation (``securitypolicyviolation`` events
and console errors) and the test expects none. The viewer draws a real textured
GLB, so three.js's WebGL and blob: texture path runs under the policy.
"""

import io
import re

import numpy as np
import pytest
import trimesh
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from PIL import Image

from projects.models import Project
from tests.e2e.conftest import DESKTOP
from tests.e2e.pages import canvas_variance
from tokens.services import token_issue

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "turntable-Vase-2041"
RECORD = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}`);
});
"""


def _textured_glb() -> bytes:
    """A cube whose texture is an embedded PNG: GLTFLoader decodes it via blob:."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    checker = np.kron(
        (np.indices((8, 8)).sum(axis=0) % 2).astype(np.uint8) * 200 + 40,
        np.ones((16, 16), dtype=np.uint8),
    )
    texture = Image.fromarray(np.stack([checker, checker // 2, 255 - checker], -1))
    uv = np.column_stack(
        [
            (box.vertices[:, 0] + 0.5),
            (box.vertices[:, 1] + box.vertices[:, 2]) / 2 + 0.5,
        ]
    )
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=texture)
    return box.export(file_type="glb")


def _person(email: str, *, staff: bool = False) -> tuple[Client, object]:
    user = get_user_model().objects.create_user(
        username=email.split("@")[0],
        email=email,
        password=PASSWORD,
        is_staff=staff,
        is_superuser=staff,
    )
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    client = Client()
    client.force_login(user)
    return client, user


def _done_project(token) -> Project:
    project = Project.objects.create(
        token=token,
        name="cube.zip",
        photos=1,
        filesize=1000,
        parts=1,
        status=Project.Status.DONE,
        image_count=1,
    )
    photos = io.BytesIO()
    img = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 120, 200)).save(img, "JPEG")
    import zipfile

    with zipfile.ZipFile(photos, "w") as zf:
        zf.writestr("IMG_0001.jpg", img.getvalue())
    project.input_path = default_storage.save(
        f"{project.storage_prefix}/input-1.zip", ContentFile(photos.getvalue())
    )
    project.result_path = f"{project.storage_prefix}/result-1"
    files = {
        "model.glb": _textured_glb(),
        "cameras.json": b'{"cameras": []}',
        "result.zip": b"PK",
    }
    for name, data in files.items():
        default_storage.save(f"{project.result_path}/{name}", ContentFile(data))
    project.progress = {
        "files": {n: len(d) for n, d in files.items()},
        "stats": {"faces": 12},
        "log": ["Done."],
    }
    project.share_key = "csp-test-share-key-0123456789abcdef"
    project.share_photos = True
    project.save()
    return project


def _context(browser, base: str, client: Client | None):
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(RECORD)
    if client is not None:
        context.add_cookies(
            [
                {
                    "name": "sessionid",
                    "value": client.cookies["sessionid"].value,
                    "url": base,
                }
            ]
        )
    return context


def _violations(
    context, base: str, path: str, *, viewer: bool = False, status: int = 200
) -> list[str]:
    page = context.new_page()
    console: list[str] = []
    page.on(
        "console",
        lambda m: (
            console.append(m.text) if "Content Security Policy" in m.text else None
        ),
    )
    response = page.goto(f"{base}{path}", wait_until="networkidle")
    assert response is not None
    assert response.status == status, (path, response.status)
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy, (path, policy)
    assert "unsafe-inline" not in policy
    if viewer:
        page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
        page.wait_for_timeout(500)
        assert canvas_variance(page) > 8, f"{path}: the viewer drew nothing"
    found = page.evaluate("window.__csp") + console
    page.close()
    return found


def test_every_page_has_a_strict_csp_and_no_violations(live_server, browser) -> None:
    base = live_server.url
    owner, user = _person("owner@example.org")
    token, _key = token_issue(
        user=user, email=user.email, forename="Ada", surname="Owner", credit=10**10
    )
    done = _done_project(token)
    waiting = Project.objects.create(
        token=token, name="waiting.zip", photos=3, filesize=10, parts=1
    )
    admin, _ = _person("boss@example.org", staff=True)
    pending = get_user_model().objects.create_user(
        username="pending", email="pending@example.org", password=PASSWORD
    )
    address = EmailAddress.objects.create(
        user=pending, email=pending.email, verified=False, primary=True
    )
    confirm_key = EmailConfirmationHMAC(address).key

    pages: dict[str, list[tuple]] = {
        "anonymous": [
            ("/", False),
            ("/accounts/login/", False),
            ("/accounts/signup/", False),
            ("/accounts/password/reset/", False),
            ("/accounts/password/reset/done/", False),
            ("/accounts/confirm-email/", False),
            (f"/accounts/confirm-email/{confirm_key}/", False),
            ("/no-such-page/", False, 404),
            ("/admin/login/", False),
            ("/api/docs/", False),
            (f"/s/{done.share_key}/", True),
        ],
        "owner": [
            ("/projects/", False),
            ("/projects/new/", False),
            ("/token/", False),
            ("/accounts/email/", False),
            ("/accounts/password/change/", False),
            ("/accounts/logout/", False),
            (f"/projects/{waiting.pk}/", False),
            (f"/projects/{done.pk}/", True),
        ],
        "admin": [
            ("/admin/", False),
            ("/admin/tokens/token/", False),
            (f"/admin/tokens/token/{token.pk}/change/", False),
            (f"/admin/tokens/token/{token.pk}/adjust/", False),
            ("/admin/tokens/creditledgerentry/", False),
            ("/admin/projects/project/", False),
        ],
    }
    clients = {"anonymous": None, "owner": owner, "admin": admin}

    found: dict[str, list[str]] = {}
    for who, paths in pages.items():
        context = _context(browser, base, clients[who])
        for path, viewer, *status in paths:
            violations = _violations(
                context, base, path, viewer=viewer, status=(status or [200])[0]
            )
            if violations:
                found[path] = violations
        context.close()

    assert found == {}


def test_the_api_docs_load_nothing_from_another_origin(live_server, browser) -> None:
    context = _context(browser, live_server.url, None)
    page = context.new_page()
    origins: set[str] = set()
    page.on(
        "request", lambda r: origins.add(re.match(r"^[a-z]+://[^/]+", r.url).group(0))
    )
    page.goto(f"{live_server.url}/api/docs/", wait_until="networkidle")
    page.wait_for_selector(".swagger-ui .info", timeout=30_000)
    context.close()

    assert origins == {live_server.url}
    assert page.url.endswith("/api/docs/")
