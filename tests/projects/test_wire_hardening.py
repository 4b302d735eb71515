"""Issue 10 over HTTP against the real server: gunicorn with
gunicorn.conf.py on PostgreSQL.

Each test names the item of the issue it proves. The worker runs in-process
(jobs.job_run_next) on the same database and media folder as the server.
"""

import concurrent.futures
import hashlib
import html
import re
import threading
import time
from pathlib import Path

import pytest
import requests
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client

from openscan_portal.request_limits import REQUEST_LINE_MAX
from projects import links
from projects.models import Project, UploadChunk
from projects.services import jobs
from projects.services.projects import project_create, project_delete, project_start
from tests.images import (
    crafted_zip,
    jpeg_bytes,
    jpeg_declaring,
    photo_set,
    png_header_only,
    zip_bytes,
    zip_with_directory_of,
)
from tests.projects.gunicorn_live import raw_exchange, start_gunicorn
from tokens.models import CreditLedgerEntry, SignupGrant, Token

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
PART = 200_000_000


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    yield from start_gunicorn(tmp_path_factory.mktemp("gunicorn"))


def _files_under(prefix: str) -> list[str]:
    root = Path(default_storage.location) / prefix
    return (
        sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []
    )


def _create(
    server,
    key: str,
    name: str,
    data: bytes,
    parts: int = 1,
    source: str = "127.0.0.1",
    photos: int = 3,
) -> dict:
    status, body = server.get(
        "/createProject",
        {
            "token": key,
            "project": name,
            "photos": photos,
            "parts": parts,
            "filesize": len(data),
        },
        source=source,
    )
    assert status == 200, body
    return body


def _chunked(data: bytes, piece: int = 7_000):
    # A generator body: requests sends Transfer-Encoding: chunked, no Content-Length.
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


# --- 1. chunked part uploads ---------------------------------------------------------


def test_item1_chunked_parts_are_streamed_stored_and_started(server, private_token):
    data = zip_bytes(photo_set(3))
    body = _create(server, private_token[1], "chunked.zip", data)
    post = requests.post(body["ulink"][0], data=_chunked(data), timeout=60)
    assert post.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in post.request.headers
    assert post.status_code == 200, post.text
    assert post.json()["size"] == len(data)
    assert post.json()["sha256"] == hashlib.sha256(data).hexdigest()
    status, started = server.get(
        "/startProject", {"token": private_token[1], "project": "chunked.zip"}
    )
    assert (status, started) == (200, {"status": "started"})


def test_item1_chunked_part_past_200000000_bytes_is_cut_with_413_and_nothing_stored(
    server, private_token
):
    # given a project whose one part may be 200,000,000 bytes
    body = _create(server, private_token[1], "huge.zip", b"x" * PART)
    path = body["ulink"][0].split(str(server.port), 1)[1]
    project = Project.objects.get(name="huge.zip")

    # when 200,000,001 bytes arrive chunked and the client then waits (no final chunk)
    def request():
        yield (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            "application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        block = b"z" * (1 << 20)
        sent = 0
        while sent < PART + 1:
            n = min(len(block), PART + 1 - sent)
            yield f"{n:x}\r\n".encode() + block[:n] + b"\r\n"
            sent += n

    status, answer = raw_exchange(server.host, server.port, request())

    # then the server answers 413 without waiting for the end, and keeps nothing
    assert status == 413, answer[:300]
    assert b"at most 200000000 bytes" in answer
    assert not UploadChunk.objects.filter(project=project).exists()
    assert _files_under(project.storage_prefix) == []


def test_item1_no_411_a_part_without_length_or_chunking_is_an_empty_part(
    server, private_token
):
    body = _create(server, private_token[1], "nolength.zip", b"x" * 100)
    path = body["ulink"][0].split(str(server.port), 1)[1]
    status, answer = raw_exchange(
        server.host,
        server.port,
        iter(
            [
                (
                    f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                    "close\r\n\r\n"
                ).encode()
            ]
        ),
    )
    assert status == 400
    assert b"The part is empty" in answer


# --- 2. more than 1,000 query parameters
# ------------------------------------------------


def _filelist(count: int, width: int = 60) -> list[str]:
    return [
        f"/home/pi/OpenScan/scans/s/IMG_{i:05d}.jpg".ljust(width, "x")
        for i in range(count)
    ]


def test_item2_thousands_of_parameters_work_and_over_the_photo_limit_is_a_named_400(
    server, make_token
):
    _, key = make_token(limit_photos=2000)
    data = zip_bytes(photo_set(3))
    files = _filelist(1500)
    status, info = server.get("/getTokenInfo", {"token": key, "filelist": files})
    assert status == 200
    assert info["limit_photos"] == 2000
    status, created = server.get(
        "/createProject",
        {
            "token": key,
            "project": "many.zip",
            "photos": 1500,
            "parts": 1,
            "filesize": len(data),
            "filelist": files,
            "partslist": ["/tmp/x_1"],
        },
    )
    assert status == 200
    assert len(created["ulink"]) == 1
    status, refused = server.get(
        "/createProject",
        {
            "token": key,
            "project": "toomany.zip",
            "photos": 2001,
            "parts": 1,
            "filesize": len(data),
            "filelist": _filelist(2001),
        },
    )
    assert status == 400
    assert refused["error"] == (
        "The set has 2001 photos; this token allows at most 2000 per project."
    )
    assert not Project.objects.filter(name="toomany.zip").exists()


# --- 3. request line capped at 1 MiB
# ---------------------------------------------------


def _line_of(length: int, key: str) -> bytes:
    """A getTokenInfo request line of exactly ``length``
    bytes with 5,000 filelist params."""
    head = f"GET /getTokenInfo?token={key}"
    tail = " HTTP/1.1"
    params = [f"&filelist=IMG_{i:05d}.jpg" for i in range(5000)]
    fixed = len(head) + len(tail) + sum(len(p) for p in params)
    pad = length - fixed - len("&folder=")
    assert pad >= 0
    return (head + "".join(params) + "&folder=" + "p" * pad + tail).encode()


def test_item3_a_1_mib_line_with_5000_photos_works(server, private_token):
    line = _line_of(REQUEST_LINE_MAX, private_token[1])
    assert len(line) == 1_048_576
    status, answer = raw_exchange(
        server.host,
        server.port,
        iter([line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]),
    )
    assert status == 200, answer[:300]
    assert b'"limit_photos": 500' in answer


@pytest.mark.parametrize("size", [REQUEST_LINE_MAX + 1, 16 * 1024 * 1024])
def test_item3_longer_lines_get_414(server, private_token, size):
    request = _line_of(size, private_token[1]) + b"\r\nHost: 127.0.0.1\r\n\r\n"
    status, answer = raw_exchange(
        server.host,
        server.port,
        (request[i : i + 65536] for i in range(0, len(request), 65536)),
    )
    assert status == 414, answer[:300]


def test_item3_the_django_guard_answers_414_under_any_server(private_token):
    client = Client()
    # "GET /getTokenInfo?" and " HTTP/1.1" are 27 bytes of the line.
    query = "token=k&folder=" + "p" * (REQUEST_LINE_MAX - 27 - 15)
    ok = client.get("/getTokenInfo", QUERY_STRING=query)
    assert ok.status_code == 400  # Reached the view: "k" is no token.
    assert "unknown" in ok.json()["error"]
    r = client.get("/getTokenInfo", QUERY_STRING=query + "p")
    assert r.status_code == 414
    assert "longer than 1048576 bytes" in r.json()["error"]


# --- 4. the public key clients accept
# --------------------------------------------------


def test_item4_the_embedded_public_key_passes_client_checks_and_is_shown(
    server, public_token, settings, capsys
):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSCAN_")}
    env.update(DJANGO_DEBUG="true", DJANGO_SETTINGS_MODULE="openscan_portal.settings")
    embedded = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings; print(settings.OPENSCAN_PUBLIC_TOKEN)",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.strip()
    assert len(embedded) >= 20
    assert embedded.startswith("osp_")

    call_command("bootstrap")
    assert settings.OPENSCAN_PUBLIC_TOKEN in capsys.readouterr().out
    page = Client().get("/")
    assert settings.OPENSCAN_PUBLIC_TOKEN in page.content.decode()
    status, info = server.get(
        "/getTokenInfo", {"token": settings.OPENSCAN_PUBLIC_TOKEN}
    )
    assert status == 200
    assert info["limit_photos"] == 200


# --- 5. startProject answers at once; checks fail in the worker, with a refund
# -----------


def test_item5_start_queues_at_once_and_a_failed_check_is_readable_everywhere(
    server, make_token, django_capture_on_commit_callbacks
):
    # given a private token with an owner and a zip whose photo is truncated
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(
        "owner", email="owner@example.org", password="pw-12345-long"
    )
    token, key = make_token(user=user, email="owner@example.org")
    files = photo_set(2)
    files["broken.jpg"] = jpeg_bytes(seed=9)[:200]
    data = zip_bytes(files)
    body = _create(server, key, "late.zip", data)
    assert requests.post(body["ulink"][0], data=data, timeout=60).status_code == 200

    # when it starts, the answer comes before any join or check
    status, started = server.get("/startProject", {"token": key, "project": "late.zip"})
    project = Project.objects.get(name="late.zip")
    assert (status, started) == (200, {"status": "started"})
    assert project.status == "queued"
    assert project.input_path == ""

    # and the worker then finds the bad photo
    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_run_next()
    from projects.services.notifications import notification_send

    assert notification_send(project_id=str(project.id), attempt=1)

    # then the reason is on getProjectInfo, the REST API, the page and the e-mail
    status, info = server.get("/getProjectInfo", {"token": key, "project": "late.zip"})
    assert status == 200
    assert info["status"] == "processing failed"
    reason = "'broken.jpg' cannot be decoded"
    assert reason in info["error"]
    rest = requests.get(
        f"{server.url}/api/v1/projects/{project.id}/status/",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ).json()
    assert rest["status"] == "failed"
    assert reason in rest["error"]
    assert rest["error_code"] == "bad_archive"
    web = Client()
    web.force_login(user)
    page = web.get(f"/projects/{project.id}/").content.decode()
    assert html.escape(reason) in page
    from django.core import mail

    assert reason in mail.outbox[-1].body
    # and the charge is back (README: no model delivered, no charge)
    token.refresh_from_db()
    assert token.credit == 10_000_000_000
    assert list(
        CreditLedgerEntry.objects.filter(token=token)
        .order_by("id")
        .values_list("kind", flat=True)
    ) == ["grant", "charge", "refund"]


def test_item5_start_reads_only_the_directory_and_names_a_photo_count_mismatch(
    server, private_token
):
    data = zip_bytes(photo_set(5))
    status, body = _uploaded_and_started(server, private_token[1], "five.zip", data)
    assert status == 400
    assert body["error"] == (
        "The zip contains 5 photos but the project was created for 3. Create it "
        "again with photos=5."
    )
    assert Project.objects.get(name="five.zip").status == "created"


def test_item5_the_directory_is_read_across_parts_when_it_straddles_them(
    private_token, settings, tmp_path
):
    # given a zip split so that its last part is 10 bytes of the end record
    data = zip_bytes(photo_set(3))
    settings.OPENSCAN_PART_MAX_BYTES = len(data) - 10
    project = project_create(
        token=private_token[0],
        name="straddle.zip",
        photos=3,
        parts=2,
        filesize=len(data),
    )
    for part, body in enumerate((data[:-10], data[-10:])):
        path = links.upload_path(project_id=project.id, generation=1, part=part)
        sent = Client().post(path, body, content_type="application/octet-stream")
        assert sent.status_code == 200

    # when it starts, the directory check reads the end record across both parts
    assert project_start(project=project).status == "queued"
    # and the worker's join agrees
    assert jobs.job_input_prepare(
        project=jobs.job_claim_next(), zip_path=tmp_path / "input.zip"
    )


# --- 6. public projects belong to the client network that created them
# ------------------


def test_item6_another_client_cannot_see_restart_reset_or_supersede_a_public_project(
    server, public_token, settings
):
    key = settings.OPENSCAN_PUBLIC_TOKEN
    name = "1637700000000-OSC.zip"
    data = zip_bytes(photo_set(3))
    owner = _create(server, key, name, data, source="127.0.0.1")
    assert requests.post(owner["ulink"][0], data=data, timeout=60).status_code == 200
    mine = Project.objects.get(name=name)
    missing = {"token": key, "project": "never-created.zip"}
    theirs = {"token": key, "project": name}

    # another client gets exactly the answers of a project that does not exist
    for endpoint in ("getProjectInfo", "startProject", "resetProject"):
        assert server.get(f"/{endpoint}", theirs, source="127.0.0.2") == server.get(
            f"/{endpoint}", missing, source="127.0.0.2"
        )
    assert server.get("/getProjectInfo", theirs, source="127.0.0.2")[0] == 401
    # and creating the same name makes its own project, leaving the owner's alone
    other = _create(server, key, name, data, source="127.0.0.2")
    target = links.upload_target(other["ulink"][0].rsplit("/", 1)[1])
    assert target.project_id != mine.pk
    assert Project.objects.filter(name=name).count() == 2
    untouched = Project.objects.get(pk=mine.pk)
    assert (untouched.upload_generation, untouched.charged) == (1, len(data))
    assert untouched.chunks.count() == 1

    # while the owner's own network (or anyone behind the same NAT) still sees it
    status, info = server.get("/getProjectInfo", theirs, source="127.0.0.1")
    assert status == 200
    (link,) = info["ulink"]
    assert links.upload_target(link.rsplit("/", 1)[1]).project_id == mine.pk
    assert server.get("/startProject", theirs, source="127.0.0.1") == (
        200,
        {"status": "started"},
    )


# --- 7. parts is capped
# ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "filesize", "limit"),
    [
        (100_000, 3_000_000_000, 3000),
        (11, 10_000_000, 10),
        (10_001, 19_000_000_000, 10000),
    ],
)
def test_item7_parts_over_the_cap_is_a_400_naming_the_limit(
    server, make_token, parts, filesize, limit
):
    _, key = make_token(credit=10**12, limit_filesize=10**11)
    status, body = server.get(
        "/createProject",
        {
            "token": key,
            "project": "p.zip",
            "photos": 3,
            "parts": parts,
            "filesize": filesize,
        },
    )
    assert status == 400
    assert f"parts may be at most {limit} " in body["error"]
    assert not Project.objects.exists()


# --- 8. requestToken: one token per address, ever; mail limits
# ---------------------------


def test_item8_concurrent_requests_for_one_address_make_one_token_and_few_mails(server):
    server.mails.clear()
    params = {"mail": "Racer@Example.org", "forename": "R", "lastname": "Acer"}
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(lambda _: server.get("/requestToken", params), range(20))
        )
    statuses = sorted(status for status, _ in answers)
    assert statuses.count(200) == 3
    assert statuses.count(429) == 17
    assert Token.objects.filter(email__iexact="racer@example.org").count() == 1
    assert SignupGrant.objects.filter(email="racer@example.org").count() == 1
    assert CreditLedgerEntry.objects.filter(kind="grant").count() == 1
    assert len(server.mails) == 3
    keys = [m for m in server.mails if re.search(r"osp_\w{40}", m.get_payload())]
    assert len(keys) == 1  # one mail with the key, the others are reminders
    assert "per day" in next(b for s, b in answers if s == 429)["error"]


def test_item8_one_network_gets_at_most_10_token_mails_an_hour(server, settings):
    server.mails.clear()
    answers = [
        server.get(
            "/requestToken",
            {"mail": f"n{i}@example.org", "forename": "N", "lastname": "N"},
            source="127.0.0.3",
        )[0]
        for i in range(12)
    ]
    assert answers == [200] * 10 + [429, 429]
    assert len(server.mails) == 10
    assert Token.objects.filter(email__endswith="@example.org").count() == 10


def test_item8_the_database_refuses_a_second_grant_for_an_address():
    from django.db import IntegrityError

    SignupGrant.objects.create(email="once@example.org")
    with pytest.raises(IntegrityError), transaction.atomic():
        SignupGrant.objects.create(email="once@example.org")


# --- 9. no token in any log
# ----------------------------------------------------------------


def test_item9_a_full_wire_trip_leaves_no_token_in_the_logs(server, private_token):
    key = private_token[1]
    data = zip_bytes(photo_set(3))
    body = _create(server, key, "logged.zip", data)
    requests.post(body["ulink"][0], data=data, timeout=60)
    for endpoint in (
        "getTokenInfo",
        "getProjectInfo",
        "startProject",
        "getQueueEstimate",
    ):
        server.get(f"/{endpoint}", {"token": key, "project": "logged.zip"})
    server.get("/getTokenInfo", {"token": key + "x"})  # An unknown key is a secret too.
    requests.get(
        f"{server.url}/api/v1/projects/",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    # a request line gunicorn refuses is logged with its text
    raw_exchange(
        server.host,
        server.port,
        iter([f"GET /getTokenInfo?token={key} HTTP/1.1 x\r\n\r\n".encode()]),
    )
    time.sleep(0.5)  # The access log line is written after the answer.

    log = server.log_text()
    assert "token=[redacted]" in log  # The access log is on and saw the calls.
    assert key not in log
    assert key[4:20] not in log
    assert not re.search(r"osp_[A-Za-z0-9]{8}", log)


def test_item9_django_log_records_are_redacted_too():
    import logging

    from openscan_portal.logredact import RedactTokens

    record = logging.LogRecord(
        "django.request",
        logging.WARNING,
        __file__,
        1,
        "Bad Request: %s (Authorization: Bearer %s)",
        ("/getTokenInfo?token=osp_abcdefgh123&x=1", "osp_zzzzzzzz999"),
        None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == (
        "Bad Request: /getTokenInfo?token=[redacted]&x=1 (Authorization: Bearer "
        "[redacted])"
    )


# --- 10. crafted zips
# --------------------------------------------------------------------


# Problems the central directory shows: startProject answers 400 (local storage).
AT_START = [
    ("encrypted", "'IMG_0000.jpg' is encrypted"),
    ("method9", "'IMG_0000.jpg' uses compression method 9"),
]
# Problems only reading the entries shows: the worker fails the project.
IN_WORKER = [
    ("name_mismatch", "'IMG_0000.jpg' is damaged in the zip (File name in directory"),
    ("bad_magic", "'IMG_0000.jpg' is damaged in the zip (Bad magic number"),
    ("bad_crc", "'IMG_0000.jpg' is damaged in the zip (Bad CRC-32"),
]


def _uploaded_and_started(
    server, key: str, name: str, data: bytes, photos: int = 3
) -> tuple:
    body = _create(server, key, name, data, photos=photos)
    assert requests.post(body["ulink"][0], data=data, timeout=120).status_code == 200
    return server.get("/startProject", {"token": key, "project": name})


def _start_and_work(server, key: str, name: str, data: bytes, photos: int = 3) -> dict:
    assert _uploaded_and_started(server, key, name, data, photos)[0] == 200
    jobs.job_run_next()
    status, info = server.get("/getProjectInfo", {"token": key, "project": name})
    assert status == 200
    return info


@pytest.mark.parametrize(("kind", "reason"), AT_START)
def test_item10_a_crafted_directory_is_a_400_at_start_naming_the_entry(
    server, private_token, kind, reason
):
    status, body = _uploaded_and_started(
        server, private_token[1], f"{kind}.zip", crafted_zip(kind)
    )
    assert status == 400
    assert reason in body["error"]
    project = Project.objects.get(name=f"{kind}.zip")
    assert project.status == "created"
    assert project.chunks.count() == 1


@pytest.mark.parametrize(("kind", "reason"), IN_WORKER)
def test_item10_a_crafted_entry_fails_in_the_worker_named_and_refunded(
    server, private_token, kind, reason
):
    info = _start_and_work(server, private_token[1], f"{kind}.zip", crafted_zip(kind))
    assert info["status"] == "processing failed"
    assert reason in info["error"]
    token = Token.objects.get(pk=private_token[0].pk)
    assert token.credit == 10_000_000_000


def test_item10_a_million_entry_directory_is_refused_at_start_from_its_count(
    server, private_token
):
    status, body = _uploaded_and_started(
        server, private_token[1], "million.zip", zip_with_directory_of(1_000_000)
    )
    assert status == 400
    assert body["error"] == "The zip has 1000000 entries; at most 5000 are allowed."


def test_item10_pixel_limits_come_from_the_headers(server, private_token):
    files = {
        **photo_set(2),
        "big.jpg": jpeg_declaring(11_000, 11_000),
        "flood.png": png_header_only(20_000, 20_000),
    }
    info = _start_and_work(server, private_token[1], "px.zip", zip_bytes(files), 4)
    assert (
        "'big.jpg' has 11000×11000 pixels, more than the limit of 120" in info["error"]
    )
    assert (
        "'flood.png' has more pixels than the limit of 120 megapixels (Image size "
        "(400000000 pixels)" in info["error"]
    )


def test_item10_the_cpu_budget_stops_the_checks_with_the_entry_named(
    server, private_token, settings
):
    settings.OPENSCAN_ZIP_CHECK_CPU_SECONDS = 0  # The worker runs in this process.
    files = {f"IMG_{i:04d}.jpg": jpeg_bytes(640, 480, seed=i) for i in range(40)}
    info = _start_and_work(server, private_token[1], "cpu.zip", zip_bytes(files), 40)
    assert info["status"] == "processing failed"
    assert re.search(
        r"'IMG_\d{4}\.jpg' was not checked: .* CPU budget \(0 s were left\)",
        info["error"],
    )


def test_item10_the_cpu_budget_is_per_project_not_per_attempt(server, private_token):
    # given a project whose earlier checks used up its whole budget
    key = private_token[1]
    data = zip_bytes(photo_set(3))
    info = _start_and_work(server, key, "again.zip", crafted_zip("bad_crc"))
    assert info["status"] == "processing failed"
    Project.objects.filter(name="again.zip").update(check_cpu_seconds=120)

    # when it is reset, uploaded again with a good set and started
    assert server.get("/resetProject", {"token": key, "project": "again.zip"})[0] == 200
    info = _start_and_work(server, key, "again.zip", data)

    # then the checks stop instead of starting a fresh budget
    assert info["status"] == "processing failed"
    assert "CPU budget (0 s were left)" in info["error"]


# --- 11. strict ASCII integers
# ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["²", "³", "٣", "１", "1_000", "+3", "-1", " "],  # noqa: RUF001  # meant
)
def test_item11_non_ascii_or_signed_numbers_are_a_400_on_the_wire(
    server, private_token, value
):
    status, body = server.get(
        "/createProject",
        {
            "token": private_token[1],
            "project": "u.zip",
            "photos": value,
            "parts": 1,
            "filesize": 100,
        },
    )
    assert status == 400
    assert "photos" in body["error"]
    assert not Project.objects.exists()


def test_item11_rest_numbers_and_upload_offset_must_be_ascii(server, private_token):
    auth = {"Authorization": f"Bearer {private_token[1]}"}
    api = f"{server.url}/api/v1/projects/"
    for value in ("²", "٣"):
        r = requests.post(
            api,
            json={"name": "r.zip", "photos": value, "filesize": 100, "parts": 1},
            headers=auth,
            timeout=30,
        )
        assert r.status_code == 400
        assert r.json()["fields"]["photos"]
    created = requests.post(
        api,
        json={"name": "r.zip", "photos": 3, "filesize": 100, "parts": 1},
        headers=auth,
        timeout=30,
    ).json()
    url = server.url + created["parts"][0]["upload_url"]
    r = requests.patch(
        url,
        data=b"x" * 10,
        headers={
            **auth,
            "Upload-Offset": "³".encode("latin-1"),
            "Content-Type": "application/offset+octet-stream",
        },
        timeout=30,
    )
    assert r.status_code == 400
    assert r.json()["code"] == "offset_missing"
    # Content-Length: ³ on a wire upload link never reaches a 500.
    link = _create(server, private_token[1], "cl.zip", b"y" * 10)["ulink"][0]
    path = link.split(str(server.port), 1)[1]
    status, _ = raw_exchange(
        server.host,
        server.port,
        iter(
            [
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
                + "Content-Length: ³\r\n\r\nyyy".encode("latin-1")
            ]
        ),
    )
    assert status == 400


# --- 12. a project deleted in the middle of another request
# --------------------------------


def _delete_while_locked(project_id, request) -> tuple[int, object]:
    """Hold the project's row lock, send ``request``, delete the project once the server
    waits for the lock, then release; return what the server answered."""
    locked = threading.Event()
    release = threading.Event()

    def holder() -> None:
        try:
            with transaction.atomic():
                project = Project.objects.select_for_update().get(pk=project_id)
                locked.set()
                release.wait(60)
                project_delete(project=project)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    locked.wait(30)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(request)
        for _ in range(600):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    "current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break
            time.sleep(0.05)
        release.set()
        thread.join(60)
        return answer.result(60)


def _uploaded(server, key: str, name: str) -> Project:
    data = zip_bytes(photo_set(3))
    body = _create(server, key, name, data)
    assert requests.post(body["ulink"][0], data=data, timeout=60).status_code == 200
    return Project.objects.get(name=name)


@pytest.mark.parametrize("endpoint", ["startProject", "resetProject"])
def test_item12_start_or_reset_racing_a_delete_is_a_404(
    server, private_token, endpoint
):
    project = _uploaded(server, private_token[1], f"race-{endpoint}.zip")
    status, body = _delete_while_locked(
        project.pk,
        lambda: server.get(
            f"/{endpoint}", {"token": private_token[1], "project": project.name}
        ),
    )
    assert status == 404
    assert "deleted" in body["error"]
    assert not Project.objects.filter(pk=project.pk).exists()


def test_item12_a_second_delete_racing_the_first_is_a_404(server, private_token):
    project = _uploaded(server, private_token[1], "race-delete.zip")
    r = _delete_while_locked(
        project.pk,
        lambda: requests.delete(
            f"{server.url}/api/v1/projects/{project.pk}/",
            headers={"Authorization": f"Bearer {private_token[1]}"},
            timeout=60,
        ),
    )
    assert r.status_code == 404
    assert not Project.objects.filter(pk=project.pk).exists()


def test_item12_an_upload_racing_a_delete_is_a_404_and_stores_nothing(
    server, private_token
):
    data = zip_bytes(photo_set(3))
    body = _create(server, private_token[1], "race-upload.zip", data)
    project = Project.objects.get(name="race-upload.zip")
    r = _delete_while_locked(
        project.pk,
        lambda: requests.post(body["ulink"][0], data=_chunked(data), timeout=60),
    )
    assert r.status_code == 404
    assert "deleted" in r.json()["error"]
    assert not UploadChunk.objects.exists()
    assert _files_under(project.storage_prefix) == []
