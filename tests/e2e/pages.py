"""Helpers the browser tests share: waiting, screenshots, console errors, login."""

from __future__ import annotations

import io
import statistics
from pathlib import Path

from PIL import Image


def wait_until(page, expression: str, timeout_ms: int = 30_000) -> None:
    """Poll ``expression`` until it is true.

    ``page.wait_for_function`` evaluates a string predicate with eval, which the
    portal's CSP (script-src 'self') refuses; ``page.evaluate`` is not affected.
    """
    for _ in range(timeout_ms // 100):
        if page.evaluate(f"() => Boolean({expression})"):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"still false after {timeout_ms} ms: {expression}")


def shot(page, artifacts: Path, name: str, **kwargs) -> Path:
    path = artifacts / f"{name}.png"
    page.evaluate(
        "window.scrollTo(0, 0)"
    )  # a sticky header is drawn where the page was scrolled
    page.screenshot(path=str(path), full_page=kwargs.pop("full_page", True), **kwargs)
    return path


def canvas_variance(page, selector: str = "#viewer-stage canvas") -> float:
    """Standard deviation of the canvas pixels' luminance: 0 for a blank canvas."""
    png = page.locator(selector).screenshot()
    image = Image.open(io.BytesIO(png)).convert("L")
    pixels = list(
        image.get_flattened_data()
        if hasattr(image, "get_flattened_data")
        else image.getdata()
    )
    return statistics.pstdev(pixels)


def collect_console_errors(page) -> list[str]:
    """Start collecting the page's console errors and uncaught exceptions.

    Assert the returned list is empty at the end of the test.
    """
    errors: list[str] = []
    page.on(
        "console", lambda msg: errors.append(msg.text) if msg.type == "error" else None
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def logged_in_context(browser, live_server_url: str, user, **context_options):
    """A browser context whose session belongs to ``user`` (no login form typed)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    context = browser.new_context(**context_options)
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server_url,
            }
        ]
    )
    return context
