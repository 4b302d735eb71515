"""The project page while the real worker processes the project: a status that moves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.pages import collect_console_errors, logged_in_context, shot
from tests.e2e.processing import photo_set_for_upload
from tests.images import zip_bytes
from tests.projects.conftest import queue_project
from tests.workers import worker_thread

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _status(page) -> dict[str, str]:
    return page.evaluate(
        """() => Object.fromEntries(["status-stage", "status-step", "status-counters",
            "status-percent", "status-eta"].map((id) => {
              const el = document.getElementById(id);
              return [id, el ? el.textContent : ""];
            }))"""
    )


@pytest.mark.timeout(900)  # the real engine processes the set while the page watches
def test_status_card_counts_work_and_the_percentage_only_grows(
    browser, live_server, artifacts: Path, person, tmp_path: Path, settings
) -> None:
    # A fast machine processes the set in 10-20 s: write and poll often enough
    # to see it move.
    settings.OPENSCAN_PROGRESS_WRITE_SECONDS = 0.2
    settings.OPENSCAN_POLL_SECONDS = 0.4
    user, token = person
    photos = photo_set_for_upload(tmp_path / "render")
    project = queue_project(token, zip_bytes(photos), photos=len(photos))
    context = logged_in_context(browser, live_server.url, user, viewport=DESKTOP)
    page = context.new_page()
    errors = collect_console_errors(page)
    page.goto(f"{live_server.url}/projects/{project.pk}/")

    seen: list[dict[str, str]] = []
    with worker_thread(join_timeout=600):
        for _ in range(2400):  # at most 10 minutes
            if page.locator("#status-card").count() == 0:
                break  # done: the page reloaded into the viewer
            state = _status(page)
            if not seen or state != seen[-1]:
                seen.append(state)
                if len(seen) == 12:
                    shot(page, artifacts, "progress-running-desktop")
                    page.set_viewport_size(PHONE)
                if len(seen) == 14:
                    shot(page, artifacts, "progress-running-phone")
            page.wait_for_timeout(250)
    project.refresh_from_db()
    assert project.status == "done", project.error

    running = [s for s in seen if s["status-percent"].endswith("%")]
    percents = [int(s["status-percent"].split()[0]) for s in running]
    assert percents == sorted(percents), percents
    assert percents[-1] - percents[0] >= 50, percents
    steps = {s["status-step"] + " | " + s["status-counters"] for s in running}
    assert len(steps) >= 10, steps
    counted = {
        s["status-step"] for s in running if re.search(r"\d of \d", s["status-step"])
    }
    # The page says what is being counted inside the stages, not only their names.
    assert any(re.fullmatch(r"\d+ of 24 photos( read)?", c) for c in counted), counted
    assert any("pairs matched" in c for c in counted), counted
    assert any(re.fullmatch(r"(\d+ min )?\d+ s", s["status-eta"]) for s in running)
    assert errors == []
