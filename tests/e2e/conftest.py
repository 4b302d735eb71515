"""Browser tests: Debian's Chromium driven by Playwright
against pytest-django's live server.

Never a downloaded browser: the executable is /usr/bin/chromium (apt-get install
chromium). Screenshots go to artifacts/e2e/ (git-ignored) for people to look at.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("OPENSCAN_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # WebGL without a GPU: Chromium's software rasteriser must be allowed explicitly.
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# tests make between browser steps are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium (make install does "
            "it as root)"
        )
    import playwright.sync_api as playwright_api

    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def _vendored_three() -> None:
    vendor = (
        Path(__file__).resolve().parents[2]
        / "static"
        / "vendor"
        / "three"
        / "three.module.js"
    )
    if not vendor.exists():
        pytest.fail(
            "static/vendor/three/ is missing: run `npm ci && python "
            "scripts/vendor_three.py`."
        )


@pytest.fixture(autouse=True)
def _links_over_http(settings: object) -> None:
    """The live server speaks plain HTTP; production mails https:// links."""
    settings.ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http"  # type: ignore[attr-defined]  # pytest-django settings


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small set of photos on disk, as a person would have them in a folder."""
    from tests.e2e.processing import photo_set_for_upload

    root = tmp_path_factory.mktemp("photos")
    folder = root / "vase"
    folder.mkdir()
    for name, data in photo_set_for_upload(root / "render").items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="session")
def engine_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The real engine run once per session on the 24-photo set.

    Returns ``{"photos": {name: bytes}, "out_dir": Path, "result": result}``
    so that tests about finished projects share one reconstruction.
    """
    from projects.pipeline.orchestrate import reconstruct
    from projects.pipeline.types import ReconstructionRequest
    from tests.e2e.processing import photo_set_for_upload

    root = tmp_path_factory.mktemp("engine")
    photos = photo_set_for_upload(root / "render")
    folder = root / "photos"
    folder.mkdir()
    for name, data in photos.items():
        (folder / name).write_bytes(data)
    request = ReconstructionRequest.from_input_path(
        folder, out_dir=root / "out", workdir=root / "work"
    )
    return {"photos": photos, "out_dir": root / "out", "result": reconstruct(request)}


@pytest.fixture
def make_done_project(engine_run: dict[str, object]):
    """Make a finished project from the session's engine run, stored as a worker
    leaves it (input zip kept, outputs saved, stats in progress).

    Call ``make_done_project(token, name="vase")``.
    """
    from tests.e2e.processing import done_project_from_run

    def make(token, *, name: str = "vase"):
        return done_project_from_run(token, engine_run, name=name)

    return make


@pytest.fixture
def person(db: None):
    """A verified person with a private token: ``(user, token)``."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    from tokens.services import token_issue

    count = get_user_model().objects.count() + 1
    email = f"browser{count}@example.org"
    user = get_user_model().objects.create_user(
        username=f"browser{count}", email=email, password="turntable-Vase-2041"
    )
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    token, _key = token_issue(
        user=user, email=email, forename="Ada", surname="Browser", credit=10**10
    )
    return user, token


@pytest.fixture(autouse=True)
def _close_pages_after_each_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close every browser context a test leaves open: a viewer left auto-rotating
    keeps software WebGL busy and slows every later test in the session."""
    yield
    if "browser" in request.fixturenames:
        for context in list(request.getfixturevalue("browser").contexts):
            context.close()
