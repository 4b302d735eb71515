"""The viewer as a Sketchfab user expects it, in Debian's Chromium on desktop and
phone: the first view frames the object, fullscreen, looks, a PNG screenshot,
keyboard orbit and zoom, camera markers that open their photo and step through
the others; the coverage overlay and the real-size tool; the embed page that
other sites may frame while the owner's pages refuse it.

Everything comes from the portal itself: the engine's coverage.json, the real
real-size endpoint (a distance it refuses, then one it keeps), the full model.
"""

import base64
import http.server
import io
import json
import threading
from contextlib import contextmanager

import numpy as np
import pytest
import trimesh
from PIL import Image, ImageChops, ImageStat

from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.pages import collect_console_errors, logged_in_context, shot, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _canvas(page) -> Image.Image:
    """The canvas's own pixels (transparent where nothing is drawn)."""
    data = page.evaluate(
        "() => document.querySelector('#viewer-stage canvas').toDataURL('image/png')"
    )
    return Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert(
        "RGBA"
    )


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two frames, 0..255."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


def _settle(page) -> None:
    """Wait till the view comes to rest: damping ends and the last frame is drawn.
    Software WebGL on a busy CPU draws a phone-sized frame in ~200 ms, so a fixed
    pause is not enough; two equal frames 300 ms apart are."""
    page.wait_for_timeout(300)
    grab = "() => document.querySelector('#viewer-stage canvas').toDataURL('image/png')"
    previous = page.evaluate(grab)
    for _ in range(60):
        page.wait_for_timeout(300)
        now = page.evaluate(grab)
        if now == previous:
            return
        previous = now
    raise AssertionError("the view never came to rest")


@contextmanager
def another_site(html: str):
    """A page on another origin (a real local server: Chromium refuses a page it
    cannot place in the local network to frame the live server)."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


def exercise_viewer(page, artifacts, label: str) -> None:
    """What every viewer must do, on the page already loaded."""
    page.set_default_timeout(90_000)  # swiftshader on a shared CPU is slow
    page.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
    # the hint speaks of the pointer in hand: fingers on the phone, a mouse else
    hand, other = ("touch", "mouse") if label == "phone" else ("mouse", "touch")
    assert page.locator(f".viewer__hint--{hand}").is_visible()
    assert "a camera to see its photo" in page.inner_text(f".viewer__hint--{hand}")
    assert not page.locator(f".viewer__hint--{other}").is_visible()
    page.uncheck("#vw-rotate")
    page.uncheck("#vw-cameras")
    page.click("#vw-reset")  # back to the first view, which auto-rotate left
    _settle(page)

    # the first view frames the object, not the ring of cameras
    first = _canvas(page)
    left, top, right, bottom = (
        first.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    )
    share = max((right - left) / first.width, (bottom - top) / first.height)
    print(
        f"{label}: the model covers {(right - left) / first.width:.0%} of the width, "
        f"{(bottom - top) / first.height:.0%} of the height"
    )
    assert share > 0.45, share  # the bounding sphere fits the narrower side
    page.locator("#viewer").screenshot(
        path=str(artifacts / f"viewer-first-{label}.png")
    )

    # Tab reaches the canvas, which shows a focus ring and has a name
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.tagName") == "CANVAS":
            break
    else:
        raise AssertionError("Tab never reached the viewer")
    canvas = page.locator("#viewer-stage canvas")
    assert "Arrow keys" in canvas.get_attribute("aria-label")
    assert canvas.evaluate("c => getComputedStyle(c).outlineStyle") == "solid"

    # keyboard orbit and zoom change the view; 0 returns to the first one
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    _settle(page)
    turned = _canvas(page)
    assert _difference(first, turned) > 1.5
    page.keyboard.press("+")
    _settle(page)
    zoomed = _canvas(page)
    assert _difference(turned, zoomed) > 1.5
    page.keyboard.press("0")
    _settle(page)
    assert _difference(first, _canvas(page)) < 0.5

    # looks: clay and matcap draw other pixels than the texture, and each other
    frames = {}
    for look in ("clay", "matcap", "textured"):
        page.check(f"input[name=vw-look][value={look}]")
        _settle(page)
        frames[look] = _canvas(page)
        page.locator("#viewer").screenshot(
            path=str(artifacts / f"viewer-{look}-{label}.png")
        )
    assert _difference(frames["textured"], frames["clay"]) > 3
    assert _difference(frames["clay"], frames["matcap"]) > 3
    assert _difference(frames["textured"], first) < 0.5

    # screenshot: a PNG of the view as drawn
    with page.expect_download() as download_info:
        page.click("#vw-shot")
    download = download_info.value
    assert download.suggested_filename == "vase.png"
    png = Image.open(download.path())
    assert png.format == "PNG"
    assert png.size == first.size
    assert _difference(png.convert("RGBA"), first) < 0.5

    # fullscreen and back
    before = page.locator("#viewer-stage").bounding_box()["height"]
    page.click("#vw-fullscreen")
    wait_until(page, "document.fullscreenElement === document.getElementById('viewer')")
    _settle(page)
    stage = page.locator("#viewer-stage").bounding_box()
    # the stage takes the screen but for the toolbar (several rows on a phone)
    assert stage["height"] > max(before, page.viewport_size["height"] * 0.6)
    page.screenshot(path=str(artifacts / f"viewer-fullscreen-{label}.png"))
    assert page.locator("#vw-fullscreen").get_attribute("aria-pressed") == "true"
    page.click("#vw-fullscreen")
    wait_until(page, "document.fullscreenElement === null")

    # camera markers: zoom out till some show, click (tap) one, step through the photos
    page.check("#vw-cameras")
    canvas.focus()
    for _ in range(12):
        markers = page.evaluate(
            "() => document.getElementById('viewer').visibleCameras()"
        )
        if markers:
            break
        page.keyboard.press("-")
        _settle(page)
    assert markers, "no camera marker came into view"
    page.locator("#viewer").screenshot(
        path=str(artifacts / f"viewer-cameras-{label}.png")
    )
    # the element screenshot may scroll the page: find the markers again
    marker = page.evaluate("() => document.getElementById('viewer').visibleCameras()")[
        0
    ]
    if label == "phone":
        page.touchscreen.tap(marker["x"], marker["y"])
    else:
        page.mouse.click(marker["x"], marker["y"])
    wait_until(page, "document.getElementById('photo-dialog').open")
    wait_until(
        page,
        "document.getElementById('photo-img').complete"
        " && document.getElementById('photo-img').naturalWidth > 0",
    )
    caption = page.locator("#photo-caption").inner_text()
    assert caption.startswith(marker["name"]), (caption, marker)
    shot(page, artifacts, f"viewer-photo-{label}", full_page=False)
    # the model stays drawn behind the dialog (headless page captures show it blank)
    assert _canvas(page).getchannel("A").getbbox() is not None
    page.click("#photo-next")
    following = (marker["index"] + 1) % int(
        page.locator("#viewer").get_attribute("data-cameras")
    )
    wait_until(
        page,
        f"document.getElementById('photo-dialog').dataset.index === '{following}'",
    )
    assert page.locator("#photo-caption").inner_text() != caption
    page.keyboard.press("ArrowLeft")
    wait_until(
        page,
        "document.getElementById('photo-caption').textContent"
        f" === {json.dumps(caption)}",
    )
    page.keyboard.press("Escape")
    wait_until(page, "!document.getElementById('photo-dialog').open")
    page.keyboard.press("Home")
    page.uncheck("#vw-cameras")
    _settle(page)


@pytest.mark.timeout(1500)  # the session's engine run happens inside the first test
def test_viewer_on_desktop_and_phone(
    browser, live_server, person, make_done_project, engine_run, artifacts
) -> None:
    user, token = person
    project = make_done_project(token, name="vase")
    base = live_server.url
    detail = f"{base}/projects/{project.id}/"

    context = logged_in_context(
        browser, base, user, viewport=DESKTOP, accept_downloads=True
    )
    context.set_default_timeout(90_000)  # swiftshader on a shared CPU is slow
    page = context.new_page()
    errors = collect_console_errors(page)
    scale_posts = []
    page.on(
        "request",
        lambda request: (
            scale_posts.append((json.loads(request.post_data), request.headers))
            if request.url.endswith("/scale/") and request.method == "POST"
            else None
        ),
    )
    page.goto(detail)
    exercise_viewer(page, artifacts, "desktop")

    # coverage: red/orange dots on the clay model, a legend and the advice
    page.check("input[name=vw-look][value=clay]")
    _settle(page)
    plain = _canvas(page)
    page.check("#vw-coverage")
    wait_until(page, "Number(document.getElementById('viewer').dataset.coverage) > 0")
    _settle(page)
    overlay = _canvas(page)

    # the engine's own coverage.json: every low-coverage sample drawn, its sentence
    coverage = json.loads((engine_run["out_dir"] / "coverage.json").read_text())
    drawn = page.evaluate("Number(document.getElementById('viewer').dataset.coverage)")
    assert drawn == len(coverage["samples"]["counts"]) > 0
    assert overlay != plain
    assert page.locator("#viewer-legend").is_visible()
    assert coverage["sentence"] in page.locator("#viewer-coverage-note").inner_text()
    page.locator("#viewer").screenshot(
        path=str(artifacts / "viewer-coverage-desktop.png")
    )
    page.uncheck("#vw-coverage")
    assert not page.locator("#viewer-legend").is_visible()

    # real size: two clicks on the model, a distance, the POST the back end expects
    assert "units" in page.locator("#viewer-dims").inner_text()
    page.click("#vw-measure")
    box = page.locator("#viewer-stage canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(cx, cy - box["height"] * 0.15)
    wait_until(
        page,
        "document.getElementById('viewer-measure-hint').textContent.includes('second')",
    )
    page.mouse.click(cx, cy + box["height"] * 0.15)
    page.wait_for_selector("#viewer-measure-form:not([hidden])")
    page.locator("#viewer").screenshot(
        path=str(artifacts / "viewer-measure-desktop.png")
    )
    page.fill("#viewer-measure-mm", "250000")  # 250 m: the server refuses it
    page.click("#viewer-measure-save")
    page.wait_for_selector("#viewer-measure-error:not([hidden])")
    assert "over 100 m" in page.locator("#viewer-measure-error").inner_text()
    # the browser logs the refused request itself; nothing else went wrong
    assert errors == [
        "Failed to load resource: the server responded with a status of 400 "
        "(Bad Request)"
    ], errors
    errors.clear()
    page.fill("#viewer-measure-mm", "100")
    page.click("#viewer-measure-save")
    wait_until(page, "document.getElementById('viewer').dataset.scaled === 'true'")
    body, headers = scale_posts[-1]
    assert set(body) == {"point_a", "point_b", "distance_mm"}
    assert body["distance_mm"] == 100
    assert all(
        len(body[k]) == 3 and all(isinstance(v, float | int) for v in body[k])
        for k in ("point_a", "point_b")
    )
    bounds = trimesh.load(engine_run["out_dir"] / "model.glb", force="mesh").bounds
    for point in (body["point_a"], body["point_b"]):  # on the model, in its frame
        assert all(
            bounds[0][i] - 1e-3 <= point[i] <= bounds[1][i] + 1e-3 for i in range(3)
        ), point
    assert body["point_a"] != body["point_b"]
    assert headers["content-type"] == "application/json"
    assert headers["x-csrftoken"]
    dims = page.locator("#viewer-dims").inner_text()
    assert dims.split(" · ")[0].endswith(" mm"), dims
    assert page.locator("#vw-measure").inner_text() == "Change real size"
    project.refresh_from_db()
    separation = float(np.linalg.norm(np.subtract(body["point_a"], body["point_b"])))
    assert project.mm_per_unit == pytest.approx(100 / separation, rel=1e-6)

    # forgetting the real size: back to the model's own units, the scale gone
    page.click("#vw-measure")
    page.click("#viewer-measure-clear")
    wait_until(page, "document.getElementById('viewer').dataset.scaled === 'false'")
    assert scale_posts[-1][0] == {"clear": True}
    assert "units" in page.locator("#viewer-dims").inner_text()
    assert page.locator("#vw-measure").inner_text() == "Set real size"
    project.refresh_from_db()
    assert project.mm_per_unit is None

    # full detail on demand
    page.click("#vw-full")
    wait_until(page, "document.getElementById('viewer').dataset.full === 'ready'")
    assert page.locator("#vw-full").is_disabled()
    assert not errors, errors

    # the share page: no real-size tool, an embed snippet; the embed page frames
    page.goto(f"{detail}#share")
    page.click("#share-on")
    share_url = page.locator("#share-url").input_value()
    anonymous = browser.new_context(viewport=DESKTOP)
    anonymous.set_default_timeout(90_000)
    anon = anonymous.new_page()
    anon_errors = collect_console_errors(anon)
    anon.goto(share_url)
    anon.wait_for_selector("#viewer[data-state=ready]", timeout=60_000)
    assert not anon.locator("#vw-measure").is_visible()
    code = anon.locator("#embed-code").input_value()
    embed_url = f"{share_url}embed/"
    assert code.startswith(f'<iframe src="{embed_url}"')
    assert code.endswith("</iframe>")
    shot(anon, artifacts, "share-embed-box-desktop")

    anonymous.close()
    assert not anon_errors, anon_errors

    # another site frames the embed page; the owner's detail page and the share
    # page refuse to be framed, even for the signed-in owner
    blog_page = context.new_page()
    blog_errors = collect_console_errors(blog_page)
    blog = (
        f"<!doctype html><h1>A maker's blog</h1>{code}"
        f'<iframe src="{detail}" width="300" height="200"></iframe>'
        f'<iframe src="{share_url}" width="300" height="200"></iframe>'
    )
    with another_site(blog) as blog_url:
        blog_page.goto(blog_url)
        embedded = blog_page.frame_locator(f'iframe[src="{embed_url}"]')
        embedded.locator("#viewer[data-state=ready]").wait_for(timeout=60_000)
        blog_page.wait_for_timeout(800)
        shot(blog_page, artifacts, "embed-in-another-site-desktop", full_page=False)
        frame = next(f for f in blog_page.frames if f.url == embed_url)
        width = frame.evaluate(
            "() => document.querySelector('#viewer-stage canvas').width"
        )
        assert width > 300
        refused = [
            f.url
            for f in blog_page.frames
            if f is not blog_page.main_frame and f is not frame
        ]
        # blocked: Chromium shows its error page instead of either
        assert refused == ["chrome-error://chromewebdata/"] * 2, refused
    assert len(blog_errors) == 2, blog_errors
    assert all("frame-ancestors 'none'" in e for e in blog_errors), blog_errors
    blog_page.close()

    # phone: the same viewer on the owner's page
    phone = logged_in_context(
        browser,
        base,
        user,
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        accept_downloads=True,
    )
    phone_page = phone.new_page()
    phone_errors = collect_console_errors(phone_page)
    phone_page.goto(detail)
    exercise_viewer(phone_page, artifacts, "phone")
    shot(phone_page, artifacts, "viewer-page-phone")
    assert not phone_errors, phone_errors
    phone.close()
    context.close()
