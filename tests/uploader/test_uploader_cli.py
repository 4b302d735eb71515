"""The CLI end to end against a reduced portal on 127.0.0.1 (real HTTP, real files)."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from openscan_upload import cli, follow
from openscan_upload.client import WireClient
from openscan_upload.state import (
    STATE_FILE_NAME,
    ProjectRef,
    UploadState,
    load_state,
)


def run(portal, *args: str, token: str | None = None) -> int:
    polling = ["--poll-interval", "0.01"] if args[0] in ("upload", "status") else []
    return cli.main(
        [*args, "--server", portal.url, "--token", token or portal.token, *polling]
    )


def upload(portal, folder: Path, *extra: str, token: str | None = None) -> int:
    return run(
        portal,
        "upload",
        str(folder),
        "--work-dir",
        str(folder.parent / "work"),
        *extra,
        token=token,
    )


def only_project(portal):
    assert len(portal.projects) == 1
    return next(iter(portal.projects.values()))


def test_check_passes_a_good_set(fake_portal, photo_set) -> None:
    folder = photo_set(3)

    assert run(fake_portal, "check", str(folder)) == cli.EXIT_OK

    report = json.loads((folder / "openscan-upload-report.json").read_text())
    assert report["summary"]["photos"] == 3
    assert report["summary"]["errors"] == 0
    assert fake_portal.calls == ["GET getTokenInfo"]


def test_check_fails_with_exit_3_after_checking_everything(
    fake_portal, photo_set, capsys
) -> None:
    folder = photo_set(3)
    (folder / "bad.jpg").write_bytes(b"not a photo")
    (folder / "copy.jpg").write_bytes((folder / "IMG_0000.jpg").read_bytes())

    assert run(fake_portal, "check", str(folder)) == cli.EXIT_VALIDATION

    out = capsys.readouterr().out
    assert "NotAnImage (1)" in out
    assert "Duplicate (1)" in out
    report = json.loads((folder / "openscan-upload-report.json").read_text())
    assert report["summary"]["by_kind"] == {"Duplicate": 1, "NotAnImage": 1}


def test_strict_check_fails_on_warnings(fake_portal, tmp_path, make_photo) -> None:
    (tmp_path / "a.jpg").write_bytes(make_photo(focal=None))

    assert cli.main(["check", str(tmp_path)]) == cli.EXIT_OK
    assert cli.main(["check", str(tmp_path), "--strict"]) == cli.EXIT_VALIDATION


def test_full_trip_upload_wait_download(fake_portal, photo_set, tmp_path) -> None:
    folder = photo_set(4)
    out = tmp_path / "out"
    out.mkdir()

    code = upload(fake_portal, folder, "--wait", "--download", str(out))

    assert code == cli.EXIT_OK
    project = only_project(fake_portal)
    assert project.status == "processing done"
    with zipfile.ZipFile(BytesIO(fake_portal.zip_of(project.name))) as archive:
        assert archive.testzip() is None
        assert len(archive.namelist()) == 4
    assert fake_portal.charges == [(project.name, project.filesize)]
    stem = project.name[:-4]
    assert sorted(p.name for p in out.iterdir()) == [stem, stem + "-result.zip"]
    with zipfile.ZipFile(out / (stem + "-result.zip")) as result:
        expected = sorted(
            Path(n).name for n in result.namelist() if not n.endswith("/")
        )
    assert expected
    assert sorted(p.name for p in (out / stem).iterdir()) == expected
    state = load_state(folder / STATE_FILE_NAME)
    assert state.phase == "done"
    assert state.api == "wire"
    assert fake_portal.token not in (folder / STATE_FILE_NAME).read_text()
    assert not (folder.parent / "work").exists() or not any(
        (folder.parent / "work").iterdir()
    )


def test_multi_part_upload(fake_portal, photo_set) -> None:
    folder = photo_set(4)

    assert upload(fake_portal, folder, "--part-size", "30000") == cli.EXIT_OK

    project = only_project(fake_portal)
    assert project.parts == -(-project.filesize // 30000)
    assert project.parts >= 3
    assert project.status == "started"
    assert [len(project.stored[i]) for i in range(project.parts - 1)] == [30000] * (
        project.parts - 1
    )
    assert zipfile.ZipFile(BytesIO(fake_portal.zip_of(project.name))).testzip() is None


def test_cut_connection_is_retried_within_the_run(fake_portal, photo_set) -> None:
    folder = photo_set(3)
    fake_portal.drops = [5000]

    assert upload(fake_portal, folder, "--part-size", "40000") == cli.EXIT_OK

    project = only_project(fake_portal)
    assert project.status == "started"
    assert len(fake_portal.charges) == 1


def test_cut_connection_then_rerun_resumes_with_one_project_and_one_charge(
    fake_portal,
    photo_set,
) -> None:
    folder = photo_set(4)
    fake_portal.drops = [-1, 7000]

    first = upload(fake_portal, folder, "--part-size", "30000", "--retries", "1")

    assert first == cli.EXIT_NETWORK
    state = load_state(folder / STATE_FILE_NAME)
    assert state.phase == "created"
    assert [part["state"] for part in state.parts][:2] == ["done", "pending"]
    # when
    fake_portal.drops = []
    posts_before = sum(
        1 for call in fake_portal.calls if call.startswith("POST /upload")
    )
    second = upload(fake_portal, folder, "--part-size", "30000", "--retries", "1")
    # then
    assert second == cli.EXIT_OK
    project = only_project(fake_portal)
    assert project.status == "started"
    assert fake_portal.charges == [(project.name, project.filesize)]
    assert (
        sum(1 for call in fake_portal.calls if call.startswith("POST /upload"))
        - (posts_before)
        == project.parts - 1
    )
    assert zipfile.ZipFile(BytesIO(fake_portal.zip_of(project.name))).testzip() is None


def test_rerun_skips_confirmed_parts(fake_portal, photo_set, monkeypatch) -> None:
    folder = photo_set(4)
    real = WireClient.upload_part
    sent: list[int] = []

    def interrupt_on_third(self, link, path, offset, size, progress=None):
        if len(sent) == 2:
            raise KeyboardInterrupt
        sent.append(offset)
        return real(self, link, path, offset, size, progress)

    monkeypatch.setattr(WireClient, "upload_part", interrupt_on_third)

    assert upload(fake_portal, folder, "--part-size", "30000") == cli.EXIT_INTERRUPTED

    state = load_state(folder / STATE_FILE_NAME)
    assert [part["state"] for part in state.parts][:3] == ["done", "done", "pending"]
    monkeypatch.setattr(WireClient, "upload_part", real)
    calls_before = len(fake_portal.calls)

    assert upload(fake_portal, folder, "--part-size", "30000") == cli.EXIT_OK

    project = only_project(fake_portal)
    uploads = [
        c for c in fake_portal.calls[calls_before:] if c.startswith("POST /upload")
    ]
    assert len(uploads) == project.parts - 2
    assert not any(
        c.startswith("POST /upload/") and c.split("/")[3] in ("0", "1")
        for c in fake_portal.calls[calls_before:]
    )
    assert len(fake_portal.charges) == 1


def test_expired_links_are_asked_again(fake_portal, photo_set, monkeypatch) -> None:
    folder = photo_set(3)
    fake_portal.expire_issued_links = True
    original = WireClient.project_info

    def reissue(self, name):
        fake_portal.expire_issued_links = False
        return original(self, name)

    monkeypatch.setattr(WireClient, "project_info", reissue)

    assert upload(fake_portal, folder) == cli.EXIT_OK

    assert only_project(fake_portal).status == "started"
    assert "GET getProjectInfo" in fake_portal.calls
    assert len(fake_portal.charges) == 1


def test_links_older_than_four_hours_are_renewed_before_use(
    fake_portal, photo_set
) -> None:
    import time_machine

    folder = photo_set(3)
    with time_machine.travel(0, tick=True) as traveller:
        fake_portal.drops = [0]
        assert upload(fake_portal, folder, "--retries", "1") == cli.EXIT_NETWORK
        traveller.shift(5 * 3600)
        assert upload(fake_portal, folder) == cli.EXIT_OK

    assert fake_portal.calls.count("GET getProjectInfo") == 1
    assert len(fake_portal.charges) == 1


def test_bad_token_exits_4_without_retries(fake_portal, photo_set) -> None:
    folder = photo_set(2)

    assert upload(fake_portal, folder, token="wrong") == cli.EXIT_AUTH

    assert fake_portal.calls == ["GET api/v1", "GET getTokenInfo"]
    assert fake_portal.projects == {}


def test_validation_error_stops_before_anything_is_created(
    fake_portal, photo_set
) -> None:
    folder = photo_set(3)
    (folder / "IMG_0009.jpg").write_bytes((folder / "IMG_0000.jpg").read_bytes()[:3000])

    assert upload(fake_portal, folder) == cli.EXIT_VALIDATION

    assert fake_portal.projects == {}


def test_skip_bad_uploads_the_rest_and_reports_partial_success(
    fake_portal, photo_set
) -> None:
    folder = photo_set(3)
    (folder / "IMG_0009.jpg").write_bytes((folder / "IMG_0000.jpg").read_bytes()[:3000])

    assert upload(fake_portal, folder, "--skip-bad") == cli.EXIT_PARTIAL

    project = only_project(fake_portal)
    assert project.photos == 3
    names = zipfile.ZipFile(BytesIO(fake_portal.zip_of(project.name))).namelist()
    assert names == ["IMG_0000.jpg", "IMG_0001.jpg", "IMG_0002.jpg"]


def test_not_enough_credit_is_a_validation_failure(fake_portal, photo_set) -> None:
    folder = photo_set(2)
    fake_portal.credit = 1000

    assert upload(fake_portal, folder) == cli.EXIT_VALIDATION

    assert fake_portal.projects == {}


def test_changed_photos_after_creation_refuse_to_resume(
    fake_portal, photo_set, make_photo
) -> None:
    folder = photo_set(3)
    fake_portal.drops = [0]
    assert upload(fake_portal, folder, "--retries", "1") == cli.EXIT_NETWORK
    (folder / "IMG_0001.jpg").write_bytes(make_photo(seed=77))

    assert upload(fake_portal, folder) == cli.EXIT_VALIDATION
    assert upload(fake_portal, folder, "--restart") == cli.EXIT_OK

    assert len(fake_portal.projects) == 2


def test_rerun_after_success_does_not_upload_again(fake_portal, photo_set) -> None:
    folder = photo_set(2)
    assert upload(fake_portal, folder) == cli.EXIT_OK
    calls = len(fake_portal.calls)

    assert upload(fake_portal, folder) == cli.EXIT_OK

    assert fake_portal.calls[calls:] == []
    assert len(fake_portal.charges) == 1


def test_status_and_download_commands(fake_portal, photo_set, tmp_path, capsys) -> None:
    folder = photo_set(2)
    assert upload(fake_portal, folder) == cli.EXIT_OK
    fake_portal.polls_until_done = 3

    assert run(fake_portal, "status", str(folder)) == cli.EXIT_OK
    assert "started" in capsys.readouterr().out
    assert run(fake_portal, "download", str(folder), "-o", str(tmp_path / "r.zip")) == (
        cli.EXIT_REJECTED
    )
    assert run(fake_portal, "status", str(folder), "--wait") == cli.EXIT_OK
    assert run(fake_portal, "download", str(folder), "-o", str(tmp_path / "r.zip")) == (
        cli.EXIT_OK
    )

    assert (tmp_path / "r.zip").read_bytes() == fake_portal.result


def test_json_mode_prints_only_json_events(fake_portal, photo_set, capsys) -> None:
    folder = photo_set(2)

    assert upload(fake_portal, folder, "--json") == cli.EXIT_OK

    lines = capsys.readouterr().out.strip().splitlines()
    events = [json.loads(line) for line in lines]
    names = [event["event"] for event in events]
    for expected in (
        "token",
        "validation",
        "packed",
        "created",
        "part_done",
        "started",
    ):
        assert expected in names
    assert events[-1] == {"event": "exit", "code": 0, "meaning": cli.EXIT_CODES[0]}


def test_missing_server_is_a_usage_error(photo_set, monkeypatch) -> None:
    monkeypatch.delenv("OPENSCAN_SERVER", raising=False)

    assert cli.main(["upload", str(photo_set(1)), "--token", "x"]) == cli.EXIT_USAGE
    assert cli.main(["upload"]) == cli.EXIT_USAGE


# ---------------------------------------------------------------- REST API


@pytest.fixture
def rest_portal(fake_portal):
    fake_portal.rest = True
    return fake_portal


def test_rest_upload_is_preferred_when_offered(
    rest_portal, photo_set, tmp_path
) -> None:
    folder = photo_set(3)

    assert (
        upload(
            rest_portal,
            folder,
            "--part-size",
            "30000",
            "--wait",
            "--download",
            str(tmp_path / "model.zip"),
        )
        == cli.EXIT_OK
    )

    project = only_project(rest_portal)
    assert not any(call.startswith("GET createProject") for call in rest_portal.calls)
    assert any(call.startswith("PATCH") for call in rest_portal.calls)
    assert zipfile.ZipFile(BytesIO(rest_portal.zip_of(project.name))).testzip() is None
    assert (tmp_path / "model.zip").read_bytes() == rest_portal.result
    assert load_state(folder / STATE_FILE_NAME).project.id == project.id


def test_rest_resume_continues_from_the_server_offset(rest_portal, photo_set) -> None:
    folder = photo_set(3)
    rest_portal.drops = [-1, -1, -1, 3000]

    assert upload(rest_portal, folder, "--retries", "1", "--chunk-size", "8000") == (
        cli.EXIT_NETWORK
    )
    rest_portal.drops = []
    project = only_project(rest_portal)
    kept = len(project.stored.get(0, b""))
    assert kept == 24000
    patches_before = sum(1 for c in rest_portal.calls if c.startswith("PATCH"))

    assert (
        upload(rest_portal, folder, "--retries", "1", "--chunk-size", "8000")
        == cli.EXIT_OK
    )

    patches = (
        sum(1 for c in rest_portal.calls if c.startswith("PATCH")) - patches_before
    )
    assert patches == -(-(project.filesize - kept) // 8000)
    assert len(rest_portal.charges) == 1
    assert zipfile.ZipFile(BytesIO(rest_portal.zip_of(project.name))).testzip() is None


def test_rest_bad_token_exits_4(rest_portal, photo_set) -> None:
    folder = photo_set(2)

    assert upload(rest_portal, folder, "--api", "rest", token="nope") == cli.EXIT_AUTH
    assert rest_portal.projects == {}


@pytest.mark.parametrize(
    ("progress", "status", "percent"),
    [
        ({"stage": "dense", "overall": 0.42}, "processing", 42),
        ({"stage": "ingest", "overall": 0.0}, "processing", 0),
        ({"stage": "dense"}, "processing", None),
        (None, "done", 100),
    ],
)
def test_percent_reads_overall_as_a_fraction(progress, status, percent) -> None:
    assert follow._percent(progress, status) == percent


class _RestStub:
    def __init__(self, body: dict) -> None:
        self.body = body

    def project(self, project_id: str) -> dict:
        return self.body


def test_rest_status_finds_the_zip_in_the_downloads_list() -> None:
    state = UploadState(
        server="https://portal", api="rest", project=ProjectRef(name="vase", id="abc")
    )
    body = {
        "status": "done",
        "progress": {"overall": 1.0},
        "downloads": [
            {"name": "model.glb", "size": 9, "url": "https://portal/model.glb"},
            {"name": "result.zip", "size": 9, "url": "https://portal/result.zip"},
        ],
    }
    info = follow.fetch_status(state, wire=None, rest=_RestStub(body))
    assert info["download"] == "https://portal/result.zip"


def test_rest_create_sends_no_idempotency_key(rest_portal, monkeypatch) -> None:
    # The portal recognises a retried create by its name; no header it ignores.
    from openscan_upload.client import RestClient
    from openscan_upload.retry import RetryPolicy

    sent: list[dict] = []
    original = RestClient._request

    def spy(self, method, url, what, **kwargs):
        sent.append(kwargs.get("headers") or {})
        return original(self, method, url, what, **kwargs)

    monkeypatch.setattr(RestClient, "_request", spy)
    client = RestClient(rest_portal.url, rest_portal.token, RetryPolicy())
    client.create_project("vase.zip", photos=4, filesize=10, parts=1)
    assert [h for h in sent if "Idempotency-Key" in h] == []
