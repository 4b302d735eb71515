"""A finished project's page in the browser, on the fixtures other tests build on."""

from pathlib import Path

import pytest

from tests.e2e.conftest import DESKTOP
from tests.e2e.pages import (
    canvas_variance,
    collect_console_errors,
    logged_in_context,
    shot,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_done_project_page_draws_the_model(
    browser, live_server, artifacts: Path, person, make_done_project
) -> None:
    user, token = person
    project = make_done_project(token, name="vase")
    context = logged_in_context(browser, live_server.url, user, viewport=DESKTOP)
    page = context.new_page()
    errors = collect_console_errors(page)
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    wait_until(page, "document.querySelector('#viewer')?.dataset.state === 'ready'")
    shot(page, artifacts, "done-project-desktop")
    assert canvas_variance(page) > 5
    assert errors == []
    context.close()
