"""The user's path in Chromium: "Upload" to a visible model, page weight, first frame.

Starts the production-like portal (``manage.py runportal``: gunicorn with
gunicorn.conf.py plus the django-q2 worker, DEBUG off, static files collected
into a scratch folder and served compressed by whitenoise) on a free port
against a scratch SQLite database, makes a verified person with a private
token, then drives Debian's Chromium (never a downloaded browser) and prints:

1. "Upload" clicked on /projects/new/ with the 24-photo rendered set to the
   viewer's ``data-state="ready"``, split into upload (click to queued),
   queue wait, processing (the real engine) and page-to-ready (finished to
   the viewer drawn on the page that followed the project by itself);
2. the finished project page's weight on a cold cache: requests, bytes
   transferred as served (whitenoise's .br/.gz for static files), the bodies'
   decoded bytes and their gzip -9 size;
3. first frame on that page, median of 3 cold loads: navigation start to the
   first non-blank canvas and to ``data-state="ready"`` (set once the first
   frame is drawn); then "Full detail"
   clicked to the full model drawn (``data-full="ready"``) and its bytes.

Run: ``.venv/bin/python -m benchmarks.user_path [--views 24]`` (a few minutes:
one real engine run).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from benchmarks.portal import _free_port, scratch_env
from benchmarks.slow_clients import manage
from benchmarks.synthetic import generate, spec_for
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP
from tests.e2e.pages import wait_until

ROOT = Path(__file__).resolve().parent.parent
EMAIL = "bench@example.org"
PASSWORD = "turntable-Bench-2041"  # noqa: S105  # a scratch account, deleted after
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
COLD_LOADS = 3
# Marks, in ms since navigation start, the first frame whose canvas is not a
# flat colour and the viewer's ready state. The viewer keeps its drawing
# buffer (preserveDrawingBuffer), so reading it back between frames is exact.
FIRST_FRAME_PROBE = """
(() => {
  const probe = document.createElement("canvas");
  probe.width = probe.height = 48;
  const tick = () => {
    const root = document.getElementById("viewer");
    const canvas = document.querySelector("#viewer-stage canvas");
    if (canvas && window.__firstFrame === undefined && canvas.width > 0) {
      const ctx = probe.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(canvas, 0, 0, 48, 48);
      const px = ctx.getImageData(0, 0, 48, 48).data;
      let sum = 0, sq = 0;
      for (let i = 0; i < px.length; i += 4) {
        const l = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
        sum += l; sq += l * l;
      }
      const n = px.length / 4;
      const spread = Math.sqrt(Math.max(0, sq / n - (sum / n) ** 2));
      if (spread > 4) window.__firstFrame = performance.now();
    }
    if (root && root.dataset.state === "ready" && window.__ready === undefined) {
      window.__ready = performance.now();
    }
    if (window.__firstFrame === undefined || window.__ready === undefined) {
      requestAnimationFrame(tick);
    }
  };
  requestAnimationFrame(tick);
})();
"""


@dataclass
class Weight:
    """What one page load moved over the wire."""

    requests: int = 0
    transferred: int = 0
    decoded: int = 0
    gzipped: int = 0
    by_url: dict[str, int] = field(default_factory=dict)


def start_portal(scratch: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Set up a scratch portal with one verified person and serve it with its worker."""
    env = scratch_env(
        scratch,
        DATABASE_URL=f"sqlite:///{scratch}/bench.sqlite3",
        DJANGO_STATIC_ROOT=str(scratch / "static"),
        OPENSCAN_WORKERS="1",
    )
    manage(env, "migrate", "-v0")
    manage(env, "collectstatic", "--noinput", "-v0")
    manage(env, "bootstrap", "-v0")
    manage(
        env,
        "shell",
        "-c",
        "from allauth.account.models import EmailAddress\n"
        "from django.contrib.auth import get_user_model\n"
        "from tokens.services import token_issue\n"
        f"u = get_user_model().objects.create_user(username='bench', email='{EMAIL}',"
        f" password='{PASSWORD}')\n"
        f"EmailAddress.objects.create(user=u, email='{EMAIL}', verified=True, "
        "primary=True)\n"
        f"token_issue(user=u, email='{EMAIL}', forename='Bea', surname='Bench', "
        "credit=10**11)\n",
    )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runportal", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(base + "/status", timeout=1)
            return server, base
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit("the portal did not start")


def log_in(context: BrowserContext, base: str) -> Page:
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_login", EMAIL)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/projects/$"))
    return page


def _server_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def upload_to_ready(page: Page, base: str, photos: list[Path]) -> dict[str, float]:
    """Seconds from the "Upload" click to the viewer ready, split by stage."""
    page.goto(f"{base}/projects/new/")
    page.set_input_files("#pick-files", [str(p) for p in photos])
    wait_until(
        page, "document.getElementById('summary').textContent.includes('photos')"
    )
    page.fill("#project-name", "bench vase")
    clicked = time.time()
    page.click("#upload-button")
    page.wait_for_url(re.compile(rf"/projects/{UUID}/$"), timeout=600_000)
    page.wait_for_selector("#viewer[data-state=ready]", timeout=1_800_000)
    ready = time.time()
    project_id = re.search(UUID, page.url).group(0)  # type: ignore[union-attr]  # the URL matched above
    info = page.request.get(f"{base}/api/v1/projects/{project_id}/").json()
    assert info["status"] == "done", info
    queued, started, finished = (
        _server_time(info[k]) for k in ("queued_at", "started_at", "finished_at")
    )
    return {
        "upload (click to queued)": queued - clicked,
        "queue wait": started - queued,
        "processing (engine)": finished - started,
        "page to ready (finished to viewer)": ready - finished,
        "total": ready - clicked,
    }


def _record(page: Page, weight: Weight) -> None:
    def finished(request: Any) -> None:
        response = request.response()
        if response is None:
            return
        sizes = request.sizes()
        body = response.body() if response.status < 300 else b""
        weight.requests += 1
        weight.transferred += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        weight.decoded += len(body)
        weight.gzipped += min(len(body), len(gzip.compress(body, 9)))
        weight.by_url[request.url] = len(body)

    page.on("requestfinished", finished)


def cold_load(
    browser: Browser, state: dict[str, Any], url: str
) -> tuple[dict[str, float], Weight]:
    """One load on an empty cache: first frame, ready, then the full model."""
    context = browser.new_context(viewport=DESKTOP, storage_state=state)  # type: ignore[arg-type]  # Playwright's StorageState is a TypedDict
    page = context.new_page()
    page.add_init_script(FIRST_FRAME_PROBE)
    weight = Weight()
    _record(page, weight)
    page.goto(url)
    page.wait_for_selector("#viewer[data-state=ready]", timeout=300_000)
    wait_until(page, "window.__firstFrame !== undefined", 60_000)
    page.wait_for_load_state("networkidle")
    marks = page.evaluate("({first: window.__firstFrame, ready: window.__ready})")
    page_weight = replace(weight, by_url=dict(weight.by_url))
    result = {"first": marks["first"] / 1000, "ready": marks["ready"] / 1000}
    if page.locator("#vw-full").is_visible():
        start = time.perf_counter()
        page.click("#vw-full")
        page.wait_for_selector("#viewer[data-full=ready]", timeout=300_000)
        result["full"] = time.perf_counter() - start
        result["full_bytes"] = weight.decoded - page_weight.decoded
    context.close()
    return result, page_weight


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=24)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="openscan-userpath-"))
    photos = sorted(
        (generate(scratch / "render", spec_for(args.views, 640, 480)) / "images").glob(
            "*.jpg"
        )
    )
    photo_bytes = sum(p.stat().st_size for p in photos)
    load_before = os.getloadavg()[0]
    server, base = start_portal(scratch)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context(viewport=DESKTOP)
            page = log_in(context, base)
            stages = upload_to_ready(page, base, photos)
            project_url = page.url
            state = context.storage_state()
            context.close()
            loads = [cold_load(browser, state, project_url) for _ in range(COLD_LOADS)]
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
        shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"{len(photos)} photos, {photo_bytes / 1e6:.1f} MB; {os.cpu_count()} cores; "
        "portal: gunicorn + 1 django-q2 worker, SQLite, loopback; "
        "Chromium with SwiftShader (no GPU)"
    )
    print(
        f"load average (1 min) {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print("\n1. 'Upload' clicked to a visible model")
    for stage, seconds in stages.items():
        print(f"   {stage:<36}{seconds:>8.1f} s")

    timings = [t for t, _ in loads]
    weight = loads[0][1]
    print("\n2. Viewer page weight, cold cache (first of the loads)")
    print(f"   {'requests':<36}{weight.requests:>8}")
    print(f"   {'transferred (as served)':<36}{_mb(weight.transferred):>11}")
    print(f"   {'decoded bodies':<36}{_mb(weight.decoded):>11}")
    print(f"   {'gzip -9 of the bodies':<36}{_mb(weight.gzipped):>11}")
    for url, size in sorted(weight.by_url.items(), key=lambda kv: -kv[1])[:4]:
        print(f"     {_mb(size):>10}  {url.removeprefix(base)}")

    print(f"\n3. First frame, median of {COLD_LOADS} cold loads (each value listed)")
    for key, label in (
        ("first", "navigation to first non-blank canvas"),
        ("ready", "navigation to viewer ready"),
        ("full", "'Full detail' click to full model"),
    ):
        values = [t[key] for t in timings if key in t]
        if values:
            listed = ", ".join(f"{v:.2f}" for v in values)
            print(f"   {label:<38}{statistics.median(values):>6.2f} s  ({listed})")
        else:
            print(f"   {label:<38}   n/a (no separate full model)")
    full_bytes = [t["full_bytes"] for t in timings if "full_bytes" in t]
    if full_bytes:
        print(f"   {'full model bytes (decoded)':<38}{_mb(full_bytes[0]):>11}")


if __name__ == "__main__":
    main()
