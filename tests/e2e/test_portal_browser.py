"""A person's path through the portal in a real browser (Debian's Chromium, headless).

Sign up, read the verification mail, verify, log in, copy the token, upload a
generated photo set, watch it process, see the viewer draw the model, download
the zip, open the share link logged out; another person cannot see any of it.
"""

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.core import mail

from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.pages import canvas_variance, shot, wait_until
from tests.e2e.processing import (
    process_queued_projects,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "turntable-Vase-2041"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def sign_up_and_verify(
    page,
    base: str,
    *,
    email: str,
    forename: str,
    surname: str,
    artifacts: Path | None = None,
) -> str:
    """Sign up through the pages, open the mailed link, confirm.

    Returns the token key shown once.
    """
    page.goto(f"{base}/")
    page.get_by_role("link", name="Sign up").first.click()
    page.fill("#id_forename", forename)
    page.fill("#id_surname", surname)
    page.fill("#id_email", email)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    if artifacts:
        shot(page, artifacts, "02-signup-desktop")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/accounts/confirm-email/$"))
    assert "Check your e-mail" in page.content()
    if artifacts:
        shot(page, artifacts, "03-verification-sent-desktop")

    messages = [m for m in mail.outbox if email in m.to]
    assert len(messages) == 1, [m.subject for m in mail.outbox]
    link = re.search(
        r"https?://\S+/accounts/confirm-email/\S+/", messages[0].body
    ).group(0)
    page.goto(link)
    page.get_by_role("button", name="Confirm and get my token").click()
    page.wait_for_url(re.compile(r"/token/$"))
    key = page.locator("#token-key").inner_text().strip()
    assert re.fullmatch(r"osp_[A-Za-z0-9]{40}", key)
    return key


@pytest.mark.timeout(1500)  # the real engine reconstructs the set inside this test
def test_person_signs_up_uploads_and_views_model(
    browser, live_server, artifacts: Path, photo_dir: Path
) -> None:
    base = live_server.url
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # given: a new person signs up and verifies the address from the mail
    page.goto(f"{base}/")
    shot(page, artifacts, "01-home-desktop")
    key = sign_up_and_verify(
        page,
        base,
        email="ada@example.org",
        forename="Ada",
        surname="Lovelace",
        artifacts=artifacts,
    )
    shot(page, artifacts, "04-token-once-desktop")

    # the copy button puts the key on the clipboard
    page.click("#copy-key")
    assert page.evaluate("navigator.clipboard.readText()") == key
    # the key works against the API
    assert (
        page.request.get(
            f"{base}/api/v1/token/", headers={"Authorization": f"Bearer {key}"}
        ).status
        == 200
    )

    # log out, log in again: the key is masked now, never shown again
    page.get_by_role("button", name="Log out").click()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_login", "ada@example.org")
    page.fill("#id_password", PASSWORD)
    shot(page, artifacts, "05-login-desktop")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/projects/$"))
    shot(page, artifacts, "06-projects-empty-desktop")
    page.goto(f"{base}/token/")
    assert page.locator("#token-key").count() == 0
    assert page.locator("#masked-key").inner_text() == f"osp_…{key[-4:]}"
    assert page.locator("#ledger tbody tr").count() == 1  # the sign-up credit
    shot(page, artifacts, "07-token-masked-desktop")

    # when: a file that only pretends to be a photo is refused before any byte leaves
    page.goto(f"{base}/projects/new/")
    fake = photo_dir.parent / "fake.jpg"
    fake.write_bytes(b"not a jpeg at all")
    page.set_input_files("#pick-files", [str(fake)])
    page.wait_for_selector("#issues li.issue--error")
    assert "content is not JPEG or PNG" in page.locator("#issues").inner_text()
    assert page.locator("#upload-button").is_disabled()
    page.click("#clear-selection")

    # the photo set is checked, zipped in the browser and uploaded in resumable chunks
    photos = sorted(photo_dir.iterdir())
    page.set_input_files("#pick-files", [str(p) for p in photos] + [str(photos[0])])
    wait_until(
        page, "document.getElementById('summary').textContent.includes('photos')"
    )
    assert f"{len(photos)} photos" in page.locator("#summary").inner_text()
    page.fill("#project-name", "vase scan")
    shot(page, artifacts, "08-upload-ready-desktop")
    page.click("#upload-button")
    page.wait_for_url(re.compile(rf"/projects/{UUID}/$"), timeout=60_000)
    project_url = page.url
    project_id = re.search(UUID, project_url).group(0)
    assert page.locator("#status-badge").inner_text() in {"Queued", "Processing"}
    shot(page, artifacts, "09-project-queued-desktop")

    from projects.models import Project

    project = Project.objects.get(pk=project_id)
    assert (project.photos, project.research_consent) == (len(photos), False)

    # a second person cannot see the first person's project, nor its files
    other = browser.new_context(viewport=DESKTOP)
    other_page = other.new_page()
    sign_up_and_verify(
        other_page, base, email="eve@example.org", forename="Eve", surname="Other"
    )
    assert other_page.goto(project_url).status == 404
    assert other_page.request.get(f"{base}/api/v1/projects/{project_id}/").status == 404
    assert other_page.request.get(f"{project_url}files/model.glb").status == 404
    other_page.goto(f"{base}/projects/")
    assert "vase scan" not in other_page.content()
    other.close()

    # then: the worker processes it and the page follows without a reload by hand
    assert process_queued_projects() == 1
    project.refresh_from_db()
    assert project.status == Project.Status.DONE, (project.error_code, project.error)
    page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
    page.uncheck("#vw-rotate")
    page.wait_for_timeout(500)
    assert canvas_variance(page) > 8, "the viewer's canvas is blank"
    shot(page, artifacts, "10-project-done-desktop")
    page.locator("#viewer").screenshot(path=str(artifacts / "11-viewer-desktop.png"))
    for toggle, name in (
        ("#vw-wire", "12-viewer-wireframe"),
        ("#vw-points", "13-viewer-points"),
    ):
        page.check(toggle)
        page.wait_for_timeout(500)
        assert canvas_variance(page) > 4
        page.locator("#viewer").screenshot(path=str(artifacts / f"{name}-desktop.png"))
        page.uncheck(toggle)
    assert int(page.locator("#viewer").get_attribute("data-cameras") or 0) >= 3
    page.evaluate(
        "name => document.getElementById('viewer').showPhoto(name)", photos[0].name
    )
    wait_until(page, "document.getElementById('photo-img').naturalWidth > 0")
    page.locator("#photo-dialog").screenshot(
        path=str(artifacts / "14-camera-photo-desktop.png")
    )
    page.keyboard.press("Escape")
    assert not errors, errors

    # the result zip downloads with its assets (fetched with the page's own cookies:
    # headless Chromium's download manager stalls on this page, see the report)
    link = page.locator("a[data-file='result.zip']")
    assert link.get_attribute("download") is not None
    response = page.request.get(link.get_attribute("href"))
    assert response.status == 200
    assert response.headers["content-disposition"].startswith("attachment")
    archive = zipfile.ZipFile(io.BytesIO(response.body()))
    assert any(name.endswith(".glb") for name in archive.namelist())

    # a share link shows the viewer to someone without an account, until it is revoked
    page.click("#share-on")
    share_url = page.locator("#share-url").input_value()
    anonymous = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    anon_page = anonymous.new_page()
    anon_page.goto(share_url)
    anon_page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
    anon_page.uncheck("#vw-rotate")
    anon_page.wait_for_timeout(500)
    assert canvas_variance(anon_page) > 8
    shot(anon_page, artifacts, "15-share-phone")
    assert anon_page.goto(project_url).url.startswith(f"{base}/accounts/login/")

    # phone-sized views of the owner's pages
    phone = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        storage_state=context.storage_state(),
    )
    phone_page = phone.new_page()
    for url, name in (
        (project_url, "16-project-phone"),
        (f"{base}/projects/", "17-projects-phone"),
        (f"{base}/projects/new/", "18-upload-phone"),
        (f"{base}/token/", "19-token-phone"),
    ):
        phone_page.goto(url)
        if name == "16-project-phone":
            phone_page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
        shot(phone_page, artifacts, name)
    phone.close()

    page.click("#share-off")
    assert anon_page.goto(share_url).status == 404
    anonymous.close()
    context.close()


def test_upload_resumes_after_reload(
    browser, live_server, settings, artifacts: Path, photo_dir: Path
) -> None:
    """A reload in the middle of an upload continues from the bytes the server has."""
    settings.OPENSCAN_BROWSER_CHUNK_BYTES = 16 * 1024
    base = live_server.url
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_up_and_verify(
        page, base, email="grace@example.org", forename="Grace", surname="Hopper"
    )
    photos = [str(p) for p in sorted(photo_dir.iterdir())]

    # given: the connection drops after the first chunk of the upload
    page.goto(f"{base}/projects/new/")
    seen = {"patches": 0}

    def cut_after_first(route):
        seen["patches"] += 1
        if seen["patches"] == 1:
            route.continue_()
        else:
            route.abort("connectionreset")

    page.route(re.compile(r"/api/v1/projects/.+/parts/\d+/$"), cut_after_first)
    page.set_input_files("#pick-files", photos)
    wait_until(page, "!document.getElementById('upload-button').disabled")
    page.fill("#project-name", "resumed scan")
    page.click("#upload-button")
    wait_until(
        page,
        "document.getElementById('progress-note').textContent.includes('retrying')",
    )
    shot(page, artifacts, "20-upload-retrying-desktop")

    # when: the page is reloaded and the same photos are chosen again
    page.unroute(re.compile(r"/api/v1/projects/.+/parts/\d+/$"))
    page.reload()
    page.wait_for_selector("#resume-banner:not([hidden])")
    assert "resumed scan" in page.locator("#resume-banner").inner_text()
    shot(page, artifacts, "21-upload-resume-banner-desktop")
    from projects.models import Project

    project = Project.objects.get(name="resumed scan")
    from projects import services

    before = sum(services.parts_received(project=project).values())
    assert before > 0
    page.set_input_files("#pick-files", photos)
    wait_until(page, "!document.getElementById('upload-button').disabled")
    page.click("#upload-button")

    # then: it finishes and starts the same project, without creating another
    page.wait_for_url(re.compile(rf"/projects/{project.id}/$"), timeout=60_000)
    assert Project.objects.filter(name="resumed scan").count() == 1
    project.refresh_from_db()
    assert project.status == Project.Status.QUEUED
    context.close()
