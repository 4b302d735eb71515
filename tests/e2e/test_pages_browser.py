"""Issue 12, items 9-12 in a real browser, on a desktop and a phone: the styled
account pages (reset a password, resend the confirmation), the landing page's
costs and demo model, the token page's commands, the project list's search,
progress and times, and the share page's unfurl meta."""

import io
import re
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from PIL import Image

from openscan_portal.units import bytes_size
from projects import services
from projects.models import Project
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.pages import (
    canvas_variance,
    collect_console_errors,
    logged_in_context,
    shot,
    wait_until,
)
from tokens.services import credit_adjust

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VIEWPORTS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]
NEW_PASSWORD = "new-Turntable-2042"


def _name(viewport: dict) -> str:
    return "phone" if viewport == PHONE else "desktop"


def _context(browser, viewport: dict, **options):
    if viewport == PHONE:
        options |= {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    return browser.new_context(viewport=viewport, **options)


def _no_page_overflow(page) -> None:
    width = page.evaluate(
        "() => [document.scrollingElement.scrollWidth, window.innerWidth]"
    )
    assert width[0] <= width[1], f"the page scrolls sideways: {width}"


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_reset_password_and_resend_confirmation_through_styled_pages(
    browser, live_server, artifacts: Path, person, viewport: dict, settings
) -> None:
    settings.OPENSCAN_CONTACT_EMAIL = "help@scan.example"
    user, _token = person
    base, name = live_server.url, _name(viewport)
    context = _context(browser, viewport)
    page = context.new_page()
    errors = collect_console_errors(page)

    # the log-in page offers "Forgot your password?" once
    page.goto(f"{base}/accounts/login/")
    assert page.get_by_text("Forgot your password?").count() == 1
    page.get_by_role("link", name="Forgot your password?").click()
    page.fill("#id_email", user.email)
    shot(page, artifacts, f"pages-reset-request-{name}")
    assert page.locator(".auth a[href='mailto:help@scan.example']").count() == 1
    page.get_by_role("button", name="Send me a reset link").click()
    page.wait_for_url(re.compile(r"/accounts/password/reset/done/$"))
    assert page.locator(".auth h1").inner_text() == "Check your e-mail"
    shot(page, artifacts, f"pages-reset-done-{name}")

    # the mailed link leads to the portal's own form, then to a confirmation
    message = next(m for m in reversed(mail.outbox) if user.email in m.to)
    link = re.search(r"https?://\S+/accounts/password/reset/key/\S+/", message.body)
    page.goto(link.group(0))
    page.fill("#id_password1", NEW_PASSWORD)
    page.fill("#id_password2", NEW_PASSWORD)
    shot(page, artifacts, f"pages-reset-form-{name}")
    page.get_by_role("button", name="Save the new password").click()
    page.wait_for_url(re.compile(r"/accounts/password/reset/key/done/$"))
    assert page.locator(".auth h1").inner_text() == "Password changed"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    _no_page_overflow(page)

    # an account still waiting for its confirmation gets the link again
    late = get_user_model().objects.create_user(
        username=f"late-{name}", email=f"late-{name}@example.org", password=NEW_PASSWORD
    )
    EmailAddress.objects.create(user=late, email=late.email, verified=False)
    sent = len(mail.outbox)
    page.goto(f"{base}/accounts/confirm-email/")
    page.fill("#resend-email", late.email)
    page.get_by_role("button", name="Send the confirmation link again").click()
    page.wait_for_selector(".flash__item")
    assert "a new link is on its way" in page.locator(".flash__item").inner_text()
    assert [m.to for m in mail.outbox[sent:]] == [[late.email]]
    assert "/accounts/confirm-email/" in mail.outbox[-1].body
    shot(page, artifacts, f"pages-resend-{name}")
    _no_page_overflow(page)
    assert not errors, errors
    context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_landing_shows_costs_and_draws_the_demo_model(
    browser, live_server, artifacts: Path, viewport: dict
) -> None:
    context = _context(browser, viewport)
    page = context.new_page()
    errors = collect_console_errors(page)
    page.goto(f"{live_server.url}/")
    assert page.locator("#cost-signup").inner_text() == bytes_size(
        settings.OPENSCAN_SIGNUP_CREDIT
    )
    assert page.locator("#cost-public").inner_text() == (
        f"{bytes_size(settings.OPENSCAN_PUBLIC_DAILY_QUOTA)} a day"
    )
    page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
    page.uncheck("#vw-rotate")
    page.wait_for_timeout(500)
    assert canvas_variance(page) > 8, "the demo model is not drawn"
    shot(page, artifacts, f"pages-landing-{_name(viewport)}")
    _no_page_overflow(page)
    assert not errors, errors
    context.close()


# A browser with WebGL switched off: canvases give no WebGL context.
_NO_WEBGL = """
const getContext = HTMLCanvasElement.prototype.getContext;
HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
  return /webgl/.test(kind) ? null : getContext.call(this, kind, ...rest);
};
"""


def test_without_webgl_the_viewer_says_so_and_what_to_do(
    browser, live_server, artifacts: Path
) -> None:
    context = _context(browser, DESKTOP)
    page = context.new_page()
    page.add_init_script(_NO_WEBGL)
    page.goto(f"{live_server.url}/")
    page.wait_for_selector("#viewer[data-state=no-webgl]", timeout=30_000)
    fallback = page.locator("#viewer-fallback")
    assert fallback.is_visible()
    assert "WebGL 2 turned off" in fallback.inner_text()
    assert "try another browser" in fallback.inner_text()
    assert not page.locator("#viewer-loading").is_visible()  # no endless spinner
    assert not page.locator(".viewer__toolbar").is_visible()  # nothing to turn
    shot(page, artifacts, "pages-landing-no-webgl")
    context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_token_page_commands_copy_and_fit_a_phone(
    browser, live_server, artifacts: Path, person, viewport: dict
) -> None:
    user, token = person
    for n in range(6):
        credit_adjust(
            token=token,
            amount=(-1) ** n * 4_801_430_660,
            reason=f"A long reason for a credit movement number {n} from the desk",
        )
    base = live_server.url
    context = logged_in_context(
        browser,
        base,
        user,
        viewport=viewport,
        **({"is_mobile": True, "has_touch": True} if viewport == PHONE else {}),
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    errors = collect_console_errors(page)
    page.goto(f"{base}/token/")
    curl = 'curl -H "Authorization: Bearer osp_YOUR_TOKEN"'
    expected = {
        "#cmd-server": f"{base}/",
        "#cmd-cli": "pip install ./uploader\n"
        f"export OPENSCAN_SERVER={base} OPENSCAN_TOKEN=osp_YOUR_TOKEN\n"
        "openscan-upload upload ./my-scan --wait --download ./out",
        "#cmd-curl": f"{curl} {base}/api/v1/token/\n{curl} {base}/api/v1/projects/",
    }
    for source, text in expected.items():
        button = page.locator(f"button[data-copy='{source}']")
        button.click()
        wait_until(
            page,
            f"document.querySelector(\"[data-copy='{source}']\").textContent"
            " == 'Copied'",
        )
        assert page.evaluate("() => navigator.clipboard.readText()") == text

    # long commands scroll inside their block: no line is broken inside a flag
    for source in expected:
        block = page.locator(source)
        assert (
            block.evaluate("e => getComputedStyle(e.parentElement).whiteSpace") == "pre"
        )
    assert "4.8 GB" in page.locator("#ledger").inner_text()
    _no_page_overflow(page)
    shot(page, artifacts, f"pages-token-{_name(viewport)}")
    assert not errors, errors
    context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_project_list_searches_follows_progress_and_unfurls_shares(
    browser, live_server, artifacts: Path, person, make_done_project, viewport: dict
) -> None:
    user, token = person
    base, name = live_server.url, _name(viewport)
    done = make_done_project(token, name="red vase")
    running = Project.objects.create(
        token=token,
        name="blue bowl.zip",
        photos=24,
        filesize=1000,
        parts=1,
        status=Project.Status.PROCESSING,
        progress={"stage": "features", "overall": 0.21, "fraction": 0.6},
    )
    context = logged_in_context(browser, base, user, viewport=viewport)
    page = context.new_page()
    errors = collect_console_errors(page)
    page.goto(f"{base}/projects/")
    card = page.locator(f"[data-running='{running.id}']")
    assert card.locator("[data-role=progress-text]").inner_text() == (
        "21 % · Finding features"
    )
    assert card.locator("time").inner_text() == "just now"
    # the worker moves on: the list follows without a reload
    running.progress = {"stage": "dense", "overall": 0.64, "fraction": 0.3}
    running.save(update_fields=["progress"])
    wait_until(
        page,
        f"document.querySelector(\"[data-running='{running.id}'] "
        "[data-role=progress-text]\").textContent === '64 % · Measuring depth'",
        timeout_ms=15_000,
    )
    assert card.locator("progress").evaluate("e => e.value") == 64
    shot(page, artifacts, f"pages-list-{name}")
    _no_page_overflow(page)

    page.fill("#project-search", "VASE")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"\?q=VASE$"))
    assert page.locator(".project-card__title").all_inner_texts() == ["red vase"]
    shot(page, artifacts, f"pages-list-search-{name}")
    assert not errors, errors

    # the share link unfurls: title, description and an absolute preview image
    services.project_share(project=done, enabled=True, photos=False)
    done.refresh_from_db()
    anonymous = _context(browser, viewport)
    anon = anonymous.new_page()
    anon_errors = collect_console_errors(anon)
    share_url = f"{base}/s/{done.share_key}/"
    anon.goto(share_url)
    meta = anon.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll(
            "meta[property^='og:'], meta[name^='twitter:']")].map(
            m => [m.getAttribute('property') || m.getAttribute('name'), m.content]))"""
    )
    assert meta["og:title"] == "red vase"
    assert meta["og:url"] == share_url
    assert "24 photos" in meta["og:description"]
    assert meta["twitter:card"] == "summary_large_image"
    assert meta["og:image"] == f"{share_url}files/thumbnail.png"
    image = anon.request.get(meta["og:image"])
    assert image.status == 200
    assert image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.body())).size[0] >= 200
    anon.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
    assert not anon_errors, anon_errors
    anonymous.close()
    context.close()
