"""The wire API over real HTTP, driven the way OpenScanCloud clients drive it.

The client below is written from `openscancloud-wire.md` alone: GET with
query strings and Basic auth openscan:free, the zip split with
``f.read(part_size)`` and each part POSTed raw to its ulink.
"""

import hashlib
import io
import zipfile

import pytest
import requests
from django.core.files.storage import default_storage

from projects.models import Project
from projects.services import jobs
from tests.images import jpeg_bytes, photo_set, split, zip_bytes
from tokens import selectors
from tokens.models import CreditLedgerEntry

pytestmark = pytest.mark.django_db(transaction=True)
AUTH = ("openscan", "free")
ULINK_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_.:-")


class WireClient:
    def __init__(self, server: str, token: str) -> None:
        self.server = server.rstrip("/") + "/"
        self.token = token

    def call(self, endpoint: str, **params: object) -> requests.Response:
        params.setdefault("token", self.token)
        return requests.get(
            self.server + endpoint, auth=AUTH, params=params, timeout=60
        )

    def upload(
        self, project: str, data: bytes, part_size: int, **extra: object
    ) -> list[str]:
        parts = split(data, part_size)
        r = self.call(
            "createProject",
            project=project,
            photos=extra.pop("photos", 3),
            parts=len(parts),
            filesize=len(data),
            **extra,
        )
        assert r.status_code == 200, r.text
        ulinks = r.json()["ulink"]
        for link, part in zip(ulinks, parts, strict=True):
            post = requests.post(
                link,
                data=part,
                headers={"Content-Type": "application/octet-stream"},
                timeout=60,
            )
            assert post.status_code == 200, post.text
        return ulinks


@pytest.fixture
def wire(live_server, private_token):
    return WireClient(live_server.url, private_token[1])


def test_status_and_token_info_answer_integers(live_server, wire, private_token):
    assert requests.get(live_server.url + "/status", timeout=10).json() == {
        "status": "online"
    }
    info = wire.call("getTokenInfo")
    assert info.status_code == 200
    assert info.json() == {
        "credit": 10_000_000_000,
        "limit_filesize": 2_000_000_000,
        "limit_photos": 500,
    }
    assert all(type(v) is int for v in info.json().values())


def test_multipart_upload_start_and_info_flow(settings, wire, private_token, tmp_path):
    # given a 3-part zip (small part size so the test stays small)
    settings.OPENSCAN_PART_MAX_BYTES = 5_000
    data = zip_bytes(photo_set(6, size=(120, 90)))
    assert 10_000 < len(data) <= 15_000
    # when it is created, uploaded part by part, and started
    ulinks = wire.upload(
        "2024-01-31_10.20.30-my vase.zip",
        data,
        5_000,
        photos=6,
        folder="/home/pi",
        filelist=["a.jpg", "b.jpg"],
    )
    before = wire.call(
        "getProjectInfo", project="2024-01-31_10.20.30-my vase.zip"
    ).json()
    started = wire.call(
        "startProject",
        project="2024-01-31_10.20.30-my vase.zip",
        partslist=["/tmp/x_1"],
        ulink=ulinks,
        parts=3,
    )
    after = wire.call(
        "getProjectInfo", project="2024-01-31_10.20.30-my vase.zip"
    ).json()

    # then
    assert len(ulinks) == 3
    assert all(set(u) <= ULINK_CHARS for u in ulinks)
    assert before == {"dlink": "", "status": "created", "ulink": before["ulink"]}
    assert len(before["ulink"]) == 3
    assert started.status_code == 200
    assert started.json() == {"status": "started"}
    assert after == {"dlink": "", "status": "started", "ulink": []}
    project = Project.objects.get(name="2024-01-31_10.20.30-my vase.zip")
    assert project.status == "queued"
    assert project.chunks.count() == 3
    # the worker joins and checks the parts (the engine is not run here)
    claimed = jobs.job_claim_next()
    assert jobs.job_input_prepare(project=claimed, zip_path=tmp_path / "in.zip")
    project.refresh_from_db()
    assert project.image_count == 6

    with default_storage.open(project.input_path) as fh:
        stored = fh.read()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    assert not project.chunks.exists()


def test_create_again_while_created_and_after_reset_never_charges_twice(
    wire, private_token
):
    token = private_token[0]
    data = zip_bytes(photo_set(3))
    wire.upload("again.zip", data, 200_000_000)
    second = wire.call(
        "createProject", project="again.zip", photos=3, parts=1, filesize=len(data)
    )
    assert second.status_code == 200
    assert second.json()["credit"] == len(data)
    assert wire.call("resetProject", project="again.zip").json() == {}
    third = wire.call(
        "createProject", project="again.zip", photos=3, parts=1, filesize=len(data)
    )
    assert third.status_code == 200

    token.refresh_from_db()
    assert token.credit == 10_000_000_000 - len(data)
    kinds = list(
        CreditLedgerEntry.objects.filter(token=token)
        .order_by("id")
        .values_list("kind", "amount")
    )
    assert kinds == [
        ("grant", 10_000_000_000),
        ("charge", -len(data)),
        ("refund", len(data)),
        ("charge", -len(data)),
    ]
    assert selectors.ledger_sum(token=token) == token.credit


def test_openscan2_flow_unknown_project_is_401_then_reset_and_reupload(wire):
    assert wire.call("getProjectInfo", project="new.zip").status_code == 401
    data = zip_bytes(photo_set(3))
    wire.upload("new.zip", data, 200_000_000)
    assert wire.call("startProject", project="new.zip").status_code == 200
    info = wire.call("getProjectInfo", project="new.zip").json()
    assert info["status"] == "started"
    assert wire.call("resetProject", project="new.zip").status_code == 200
    assert wire.call("getProjectInfo", project="new.zip").json()["status"] == "created"
    wire.upload("new.zip", data, 200_000_000)
    assert wire.call("startProject", project="new.zip").status_code == 200


def test_legacy_uploader_multipart_body_is_stored_as_the_raw_part(wire):
    """uploader.py posts files= under an octet-stream header;
    the envelope must not be kept."""
    data = zip_bytes(photo_set(3))
    r = wire.call(
        "createProject", project="legacy.zip", photos=3, parts=1, filesize=len(data)
    )
    link = r.json()["ulink"][0]
    post = requests.post(
        link,
        headers={"Content-type": "application/octet-stream"},
        files={"file": io.BytesIO(data)},
        timeout=30,
    )
    assert post.status_code == 200, post.text
    assert post.json()["size"] == len(data)
    assert wire.call("startProject", project="legacy.zip").status_code == 200
    project = Project.objects.get(name="legacy.zip")
    with default_storage.open(project.chunks.get().storage_name) as fh:
        assert zipfile.ZipFile(fh).testzip() is None


def test_firmware_curl_style_post_with_form_content_type_is_stored_raw(wire):
    data = zip_bytes(photo_set(3))
    link = wire.call(
        "createProject", project="curl.zip", photos=3, parts=1, filesize=len(data)
    ).json()["ulink"][0]
    post = requests.post(
        link,
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert post.status_code == 200
    assert post.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_part_may_be_sent_again_before_start_and_the_last_write_wins(wire):
    data = zip_bytes(photo_set(3))
    link = wire.call(
        "createProject", project="resend.zip", photos=3, parts=1, filesize=len(data)
    ).json()["ulink"][0]
    assert requests.post(link, data=b"garbage" * 10, timeout=30).status_code == 200
    assert wire.call("startProject", project="resend.zip").status_code == 400
    assert requests.post(link, data=data, timeout=30).status_code == 200
    assert wire.call("startProject", project="resend.zip").status_code == 200
    assert requests.post(link, data=data, timeout=30).status_code == 409


ERROR_ROWS = [
    ("getTokenInfo", {"token": ""}, 400, "token"),
    ("getTokenInfo", {"token": "osp_nope"}, 400, "unknown"),
    (
        "createProject",
        {"project": "x.zip", "photos": "3", "parts": "1"},
        400,
        "filesize",
    ),
    (
        "createProject",
        {"project": "x.zip", "photos": "three", "parts": "1", "filesize": "10"},
        400,
        "whole number",
    ),
    (
        "createProject",
        {"project": "x.zip", "photos": "3", "parts": "1", "filesize": "3000000000"},
        400,
        "at least 15 parts",
    ),
    (
        "createProject",
        {"project": "x.zip", "photos": "3", "parts": "15", "filesize": "3000000000"},
        400,
        "at most 2000000000",
    ),
    (
        "createProject",
        {"project": "x.zip", "photos": "501", "parts": "1", "filesize": "100"},
        400,
        "at most 500",
    ),
    (
        "createProject",
        {"project": "a/b.zip", "photos": "3", "parts": "1", "filesize": "100"},
        400,
        "slashes",
    ),
    ("startProject", {"project": "missing.zip"}, 400, "create it first"),
    ("getProjectInfo", {"project": "missing.zip"}, 401, "no project"),
    ("getProjectInfo", {}, 400, "project"),
    ("resetProject", {"project": "missing.zip"}, 400, "no project"),
    (
        "requestToken",
        {"mail": "not-an-address", "forename": "A", "lastname": "B"},
        400,
        "valid e-mail",
    ),
    ("requestToken", {"forename": "A", "lastname": "B"}, 400, "mail"),
]


@pytest.mark.parametrize(("endpoint", "params", "status", "words"), ERROR_ROWS)
def test_error_rows_answer_4xx_with_a_reason_and_change_nothing(
    wire, private_token, endpoint, params, status, words
):
    r = wire.call(endpoint, **params)
    assert r.status_code == status
    assert words in r.json()["error"]
    assert not Project.objects.exists()
    assert CreditLedgerEntry.objects.filter(token=private_token[0]).count() == 1


def test_credit_shortfall_is_refused_with_a_reason(make_token, live_server):
    _, key = make_token(credit=100)
    r = WireClient(live_server.url, key).call(
        "createProject", project="big.zip", photos=3, parts=1, filesize=1000
    )
    assert r.status_code == 402
    assert "Not enough credit" in r.json()["error"]


def test_start_refuses_missing_parts_and_size_mismatch(settings, wire):
    settings.OPENSCAN_PART_MAX_BYTES = 10_000
    data = zip_bytes(photo_set(4, size=(120, 90)))
    parts = split(data, 10_000)
    ulinks = wire.call(
        "createProject",
        project="gaps.zip",
        photos=4,
        parts=len(parts),
        filesize=len(data),
    ).json()["ulink"]
    for link, part in list(zip(ulinks, parts, strict=True))[:-1]:
        requests.post(link, data=part, timeout=30)
    missing = wire.call("startProject", project="gaps.zip")
    assert missing.status_code == 400
    assert (
        f"Part(s) {len(parts)} of {len(parts)} have not arrived"
        in missing.json()["error"]
    )
    requests.post(ulinks[-1], data=parts[-1] + b"extra", timeout=30)
    mismatch = wire.call("startProject", project="gaps.zip")
    assert mismatch.status_code == 400
    assert "add up to" in mismatch.json()["error"]
    assert Project.objects.get(name="gaps.zip").status == "created"


def test_request_token_mails_a_working_private_token(live_server, mailoutbox):
    r = requests.get(
        live_server.url + "/requestToken",
        params={"mail": "maker@example.org", "forename": "Max", "lastname": "Maker"},
        auth=AUTH,
        timeout=30,
    )
    assert r.status_code == 200
    assert r.json() == {}
    key = next(w for w in mailoutbox[0].body.split() if w.startswith("osp_"))
    info = WireClient(live_server.url, key).call("getTokenInfo")
    assert info.status_code == 200
    assert info.json()["credit"] == 5_000_000_000


def test_public_token_works_with_its_configured_key(
    live_server, public_token, settings
):
    info = (
        WireClient(live_server.url, settings.OPENSCAN_PUBLIC_TOKEN)
        .call("getTokenInfo")
        .json()
    )
    assert info == {
        "credit": 10_000_000_000,
        "limit_filesize": 1_000_000_000,
        "limit_photos": 200,
    }


def test_queue_estimate_answers_loosely(wire):
    body = wire.call("getQueueEstimate").json()
    assert set(body) >= {"queue", "estimate_seconds"}
    assert body["queue"] == 0


def test_bad_photo_in_zip_fails_in_the_worker_with_the_reason_and_a_refund(
    wire, private_token
):
    files = photo_set(2)
    files["broken.jpg"] = jpeg_bytes(seed=9)[:200]
    data = zip_bytes(files)
    wire.upload("broken.zip", data, 200_000_000)
    r = wire.call("startProject", project="broken.zip")
    assert r.status_code == 200
    assert r.json() == {"status": "started"}

    jobs.job_run_next()  # The checks fail before the engine would start.

    info = wire.call("getProjectInfo", project="broken.zip").json()
    assert info["status"] == "processing failed"
    assert info["dlink"] == ""
    assert "'broken.jpg' cannot be decoded" in info["error"]
    token = private_token[0]
    token.refresh_from_db()
    assert token.credit == 10_000_000_000
    assert wire.call("resetProject", project="broken.zip").status_code == 200
    assert (
        wire.call("getProjectInfo", project="broken.zip").json()["status"] == "created"
    )
