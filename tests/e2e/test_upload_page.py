"""The upload page in a real browser: checks, removing bad files, thumbnails,
pause/resume/cancel, the streamed zip, and keyboard use.

Bad files are made on purpose next to the rendered photo set: a blurred copy,
a black photo, the same photo under another name, and a text file named .jpg.
"""

import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.pages import (
    canvas_variance,
    collect_console_errors,
    logged_in_context,
    shot,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
PARTS = re.compile(r"/api/v1/projects/.+/parts/\d+/$")


def bad_files(photo_dir: Path, folder: Path) -> dict[str, Path]:
    """A blurred copy, a black photo, a renamed duplicate and a non-image."""
    folder.mkdir(exist_ok=True)
    photos = sorted(photo_dir.iterdir())
    blurred = folder / "zz_blurred.jpg"
    Image.open(photos[5]).filter(ImageFilter.GaussianBlur(6)).save(blurred, quality=92)
    black = folder / "zz_black.jpg"
    Image.new("RGB", (640, 480), (3, 3, 3)).save(black, quality=92)
    copy = folder / "copy_of_view.jpg"
    copy.write_bytes(photos[3].read_bytes())
    fake = folder / "notes.jpg"
    fake.write_bytes(b"this is a text file, not a photo\n" * 10)
    return {"blurred": blurred, "black": black, "copy": copy, "fake": fake}


def cli_warnings(paths: list[Path]) -> dict[str, str]:
    """What openscan-upload warns about these photos: {name: "blur 13" / "dark"}."""
    from openscan_upload.validate import Limits, check_set, inspect_file

    limits = Limits()
    infos, out = [], {}
    for path in paths:
        info, issues = inspect_file(path, limits)
        infos.append(info)
        out.update({i.file: "dark" for i in issues if i.kind == "Underexposed"})
    for issue in check_set(infos, limits):
        if issue.kind == "Blurry":
            percent = re.search(r"(\d+)%", issue.message).group(1)
            out[issue.file] = " ".join(filter(None, [out.get(issue.file), percent]))
    return out


def problem_row(page, name: str):
    return page.locator(f"#file-problems li[data-name='{name}']")


def outline_width(page) -> float:
    return page.evaluate(
        "() => parseFloat(getComputedStyle(document.activeElement).outlineWidth)"
    )


def slow_parts(page, delay_ms: int) -> None:
    """Hold every chunk a little so a person has time to pause or cancel."""

    def hold(route) -> None:
        page.wait_for_timeout(delay_ms)
        route.continue_()

    page.route(PARTS, hold)


def test_upload_page_checks_removes_pauses_and_sends_exactly_the_chosen_files(
    browser, live_server, settings, artifacts: Path, photo_dir: Path, person, tmp_path
) -> None:
    settings.OPENSCAN_BROWSER_CHUNK_BYTES = 64 * 1024
    user, _token = person
    base = live_server.url
    context = logged_in_context(browser, base, user, viewport=DESKTOP)
    page = context.new_page()
    errors = collect_console_errors(page)
    # Intercept file choosers from the start: turning it on inside
    # expect_file_chooser races with the key press that opens one.
    page.on("filechooser", lambda chooser: None)
    page.goto(f"{base}/projects/new/")

    # keyboard only: Tab reaches "Choose photos"; Enter opens the chooser
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "choose-files":
            break
    assert page.evaluate("() => document.activeElement.id") == "choose-files"
    assert outline_width(page) >= 2
    shot(page, artifacts, "30-upload-focus-choose-desktop", full_page=False)
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple()
    chooser.value.set_files(str(sorted(photo_dir.iterdir())[0]))  # one at a time
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "choose-folder"
    # Enter and Space on the drop zone itself open the chooser too
    page.focus("#dropzone")
    assert outline_width(page) >= 2
    for key in ("Enter", " "):
        with page.expect_file_chooser() as chooser:
            page.keyboard.press(key)
        chooser.value.set_files(str(sorted(photo_dir.iterdir())[0]))
    # a radio button's focus is as visible as a button's
    page.focus("input[name=preset][value=fast]")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => document.activeElement.value") == "balanced"
    assert outline_width(page) >= 2

    # given: the photo set plus deliberately bad files
    bad = bad_files(photo_dir, tmp_path / "bad")
    photos = sorted(photo_dir.iterdir())
    page.set_input_files("#pick-files", [str(p) for p in photos + list(bad.values())])
    wait_until(page, "!document.getElementById('skip-bad').hidden")

    # then: the non-image and the renamed copy are bad, named, and block the upload
    assert "not JPEG or PNG" in problem_row(page, "notes.jpg").inner_text()
    assert f"identical to {photos[3].name}" in (
        problem_row(page, "copy_of_view.jpg").inner_text()
    )
    assert page.locator("#upload-button").is_disabled()
    assert "Skip the bad ones" in page.locator("#upload-blocked").inner_text()

    # and the CLI's blur and exposure checks arrive as warnings, not blocking
    wait_until(page, "document.getElementById('checking').hidden")
    assert "very dark" in problem_row(page, "zz_black.jpg").inner_text()
    assert "blurred" in problem_row(page, "zz_blurred.jpg").inner_text()
    assert page.locator("#file-problems li.file-problem--warning").count() == 2
    # the same files and figures as openscan-upload on the photos that will be measured
    cli = cli_warnings([*photos, bad["blurred"], bad["black"]])
    assert set(cli) == {"zz_blurred.jpg", "zz_black.jpg"}, cli
    for name, said in cli.items():
        text = problem_row(page, name).inner_text()
        assert ("very dark" in text) == said.startswith("dark")
        cli_percent = re.search(r"\d+", said)
        if cli_percent:
            page_percent = int(re.search(r"sharpness is (\d+)%", text).group(1))
            assert abs(page_percent - int(cli_percent.group(0))) <= 3, (text, said)

    # thumbnails of what will be sent are drawn (the bad ones are not in the grid)
    wait_until(
        page, "document.querySelectorAll('#thumbs canvas[data-drawn]').length >= 8"
    )
    assert page.locator("#thumbs li").count() == len(photos) + 2
    assert canvas_variance(page, "#thumbs li:first-child canvas") > 5
    shot(page, artifacts, "31-upload-bad-files-desktop")

    # when: one bad file is removed by hand, then the rest in one click
    problem_row(page, "notes.jpg").get_by_role("button").click()
    assert problem_row(page, "notes.jpg").count() == 0
    assert page.locator("#upload-button").is_disabled()
    page.click("#skip-bad")
    assert problem_row(page, "copy_of_view.jpg").count() == 0
    assert page.locator("#upload-button").is_enabled()
    expected = {p.name: p.read_bytes() for p in [*photos, bad["blurred"], bad["black"]]}
    assert f"{len(expected)} photos" in page.locator("#summary").inner_text()

    # and the upload is paused after its first chunks, then resumed
    slow_parts(page, 150)
    page.fill("#project-name", "checked scan")
    page.click("#upload-button")
    wait_until(
        page, "parseFloat(document.getElementById('progress-percent').textContent) > 0"
    )
    assert re.search(r"/s$", page.locator("#progress-speed").inner_text() or "x/s")
    page.click("#pause-upload")
    assert page.locator("#progress-phase").inner_text() == "Paused"
    from projects import services
    from projects.models import Project
    from projects.services.uploads import parts_join

    project = Project.objects.get(name="checked scan")
    page.wait_for_timeout(500)  # an aborted chunk settles on the server
    paused_at = sum(services.parts_received(project=project).values())
    page.wait_for_timeout(1000)
    assert sum(services.parts_received(project=project).values()) == paused_at
    assert 0 < paused_at < project.filesize
    shot(page, artifacts, "32-upload-paused-desktop")
    page.unroute(PARTS)
    page.click("#pause-upload")
    page.wait_for_url(re.compile(rf"/projects/{UUID}/$"), timeout=60_000)

    # then: the zip that reached the server is valid and holds exactly those files
    project.refresh_from_db()
    assert project.status == Project.Status.QUEUED
    assert project.photos == len(expected)
    joined = tmp_path / "joined.zip"
    parts_join(project=project, dest=joined)
    with zipfile.ZipFile(joined) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(expected)
        for name, data in expected.items():
            assert archive.read(name) == data
    assert errors == []
    context.close()


def test_upload_cancel_on_a_phone_deletes_and_refunds(
    browser, live_server, settings, artifacts: Path, photo_dir: Path, person
) -> None:
    settings.OPENSCAN_BROWSER_CHUNK_BYTES = 32 * 1024
    user, token = person
    from tokens.selectors import token_credit_available

    credit_before = token_credit_available(token=token)
    base = live_server.url
    context = logged_in_context(browser, base, user, viewport=PHONE)
    page = context.new_page()
    errors = collect_console_errors(page)
    page.goto(f"{base}/projects/new/")
    page.set_input_files("#pick-files", [str(p) for p in sorted(photo_dir.iterdir())])
    wait_until(page, "document.getElementById('checking').hidden")
    wait_until(
        page, "document.querySelectorAll('#thumbs canvas[data-drawn]').length >= 4"
    )
    shot(page, artifacts, "33-upload-selection-phone")

    slow_parts(page, 200)
    page.fill("#project-name", "cancelled scan")
    page.click("#upload-button")
    wait_until(
        page, "parseFloat(document.getElementById('progress-percent').textContent) > 0"
    )
    from projects.models import Project

    assert Project.objects.filter(name="cancelled scan").exists()
    assert token_credit_available(token=token) < credit_before
    page.click("#cancel-upload")
    wait_until(
        page,
        "document.getElementById('progress-phase').textContent === 'Upload cancelled'",
    )
    note = page.locator("#progress-note").inner_text()
    assert "refunded" in note
    assert "deleted" in note
    shot(page, artifacts, "34-upload-cancelled-phone")
    page.unroute(PARTS)

    # the refund rule: never processed, so the project is gone and the charge is back
    assert not Project.objects.filter(name="cancelled scan").exists()
    assert token_credit_available(token=token) == credit_before
    assert page.evaluate("() => localStorage.getItem('openscan.pendingUpload')") is None
    assert page.locator("#upload-button").is_enabled()
    assert errors == []
    context.close()
