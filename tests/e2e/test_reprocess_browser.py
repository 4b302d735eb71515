"""A cancelled project is processed again from its stored photos, in the browser.

The person cancelled a run; the page shows that calmly (not as an error), they
pick another preset, click "Process again", and the same photos are queued
without an upload. The real engine then processes them and the model shows.
"""

import pytest

from projects.models import Project, UploadChunk
from projects.services import project_cancel
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.pages import (
    canvas_variance,
    collect_console_errors,
    logged_in_context,
    shot,
)
from tests.e2e.processing import process_queued_projects

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RED = "rgb(180, 35, 24)"  # --danger


def _cancelled_by_owner(token, make_done_project) -> Project:
    """A run the owner cancelled while it ran: the service's own cancel."""
    project = make_done_project(token, name="vase")
    Project.objects.filter(pk=project.pk).update(
        status=Project.Status.PROCESSING, result_path=""
    )
    project.refresh_from_db()
    return project_cancel(project=project)


# The session's engine run (make_done_project) and this test's own real run.
@pytest.mark.timeout(1500)
def test_cancelled_project_is_processed_again_with_another_preset(
    live_server, browser, artifacts, person, make_done_project
):
    user, token = person
    project = _cancelled_by_owner(token, make_done_project)
    input_path, credit = project.input_path, token.credit
    url = f"{live_server.url}/projects/{project.id}/"

    # On a phone: a neutral cancelled state and the form fits the screen.
    phone = logged_in_context(browser, live_server.url, user, viewport=PHONE)
    phone_page = phone.new_page()
    phone_errors = collect_console_errors(phone_page)
    phone_page.goto(url)
    assert phone_page.locator("#cancelled").is_visible()
    assert phone_page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"
    ), "the page scrolls sideways on a phone"
    assert phone_page.locator("#action-reprocess").is_visible()
    shot(phone_page, artifacts, "reprocess-01-cancelled-phone")

    # On a desktop: the state is calm, Reset says it throws the photos away.
    context = logged_in_context(browser, live_server.url, user, viewport=DESKTOP)
    page = context.new_page()
    errors = collect_console_errors(page)
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if "/parts/" in r.url else None)
    page.goto(url)
    banner = page.locator("#cancelled")
    assert "You cancelled this run" in banner.inner_text()
    assert "banner--neutral" in banner.get_attribute("class")
    assert page.locator("#failure").count() == 0
    badge_colour = page.eval_on_selector(
        "#status-badge", "el => getComputedStyle(el).color"
    )
    assert badge_colour != RED
    assert page.eval_on_selector(
        "#cancelled", "el => getComputedStyle(el).color"
    ) not in (RED, "rgb(122, 26, 18)")
    assert "upload again" in page.locator("#action-reset").inner_text()
    assert page.locator("#reprocess-preset").input_value() == "balanced"
    shot(page, artifacts, "reprocess-02-cancelled-desktop")

    # Another preset, one click (and the confirmation naming the cost).
    page.select_option("#reprocess-preset", "fast")
    confirmations: list[str] = []

    def accept(dialog) -> None:
        confirmations.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.click("#action-reprocess")
    page.wait_for_selector("#status-badge.badge--queued")
    assert "charged" in confirmations[0]
    assert "Queued again with the fast preset" in page.content()
    shot(page, artifacts, "reprocess-03-queued-desktop")

    project.refresh_from_db()
    assert (project.status, project.preset) == ("queued", "fast")
    assert project.input_path == input_path  # the same photos, nothing uploaded
    assert not UploadChunk.objects.filter(project=project).exists()
    assert uploads == []
    token.refresh_from_db()
    assert credit - token.credit == project.filesize  # one charge for the new run

    # The worker runs the real engine on the stored photos; the page follows.
    assert process_queued_projects() == 1
    project.refresh_from_db()
    assert project.status == Project.Status.DONE, (project.error_code, project.error)
    page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
    page.uncheck("#vw-rotate")
    page.wait_for_timeout(500)
    assert canvas_variance(page) > 8, "the viewer's canvas is blank"
    shot(page, artifacts, "reprocess-04-done-desktop")
    phone_page.goto(url)
    phone_page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
    shot(phone_page, artifacts, "reprocess-05-done-phone")

    assert errors == []
    assert phone_errors == []
    context.close()
    phone.close()
