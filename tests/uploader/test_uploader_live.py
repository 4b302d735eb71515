"""The uploader's CLI against the real portal (pytest-django's live_server).

A small TCP proxy sits between the CLI and the live server, so a test can see
every request and cut a connection in the middle of an upload.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from openscan_upload import cli, session
from openscan_upload.state import STATE_FILE_NAME, load_state

from projects.models import Project
from tokens.models import CreditLedgerEntry, Token

pytestmark = pytest.mark.django_db(transaction=True)
REQUEST_LINE = re.compile(rb"^(GET|POST|PATCH|HEAD|PUT|DELETE) (\S+) HTTP/1\.[01]\r\n")


@dataclass
class Proxy:
    """Forwards 127.0.0.1 connections to the live server.

    `cut(marker, after)`: the next request whose request line contains
    `marker` gets its headers and `after` body bytes through, then both
    connections are closed without an answer.
    """

    upstream: tuple[str, int]
    url: str = ""
    requests: list[str] = field(default_factory=list)
    marker: bytes | None = None
    after: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cut(self, marker: str, after: int) -> None:
        with self.lock:
            self.marker, self.after = marker.encode(), after

    def paths(self, method: str) -> list[str]:
        return [
            line.split(" ", 1)[1]
            for line in self.requests
            if line.startswith(method + " ")
        ]


def _pump(source: socket.socket, target: socket.socket, proxy: Proxy | None) -> None:
    budget: int | None = None
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if proxy is not None and budget is None:
                match = REQUEST_LINE.match(data)
                if match:
                    proxy.requests.append(
                        f"{match.group(1).decode()} {match.group(2).decode()}"
                    )
                    with proxy.lock:
                        if proxy.marker and proxy.marker in match.group(0):
                            proxy.marker, budget = None, proxy.after
                if budget is not None:
                    head_end = data.find(b"\r\n\r\n") + 4
                    target.sendall(data[:head_end])
                    data = data[head_end:]
            if budget is not None:
                target.sendall(data[:budget])
                budget -= len(data[:budget])
                if budget <= 0:
                    break
                continue
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def proxy(live_server) -> Iterator[Proxy]:
    host, port = re.match(r"http://([^:]+):(\d+)", live_server.url).groups()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(32)
    state = Proxy(
        upstream=(host, int(port)), url=f"http://127.0.0.1:{listener.getsockname()[1]}"
    )
    running = True

    def accept() -> None:
        while running:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(state.upstream)
            threading.Thread(
                target=_pump, args=(client, server, state), daemon=True
            ).start()
            threading.Thread(
                target=_pump, args=(server, client, None), daemon=True
            ).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield state
    running = False
    listener.close()


@pytest.fixture
def small_parts(settings) -> None:
    """60,000-byte parts are only real when the server takes parts that small.

    (A part count is capped at one per 1 MB, or per part limit when smaller.)
    """
    settings.OPENSCAN_PART_MAX_BYTES = 60_000


@pytest.fixture
def token(make_token: Callable[..., tuple[Token, str]]) -> tuple[Token, str]:
    return make_token()


def upload(proxy: Proxy, key: str, folder: Path, *extra: str) -> int:
    return cli.main(
        [
            "upload",
            str(folder),
            "--server",
            proxy.url,
            "--token",
            key,
            "--work-dir",
            str(folder.parent / "work"),
            "--poll-interval",
            "0.05",
            *extra,
        ]
    )


def charges(token: Token) -> int:
    return CreditLedgerEntry.objects.filter(
        token=token, kind=CreditLedgerEntry.Kind.CHARGE
    ).count()


def test_full_upload_reaches_the_queue(proxy, token, photo_set) -> None:
    folder = photo_set(5)

    code = upload(proxy, token[1], folder, "--api", "wire")

    assert code == cli.EXIT_OK
    project = Project.objects.get(token=token[0])
    assert project.status != Project.Status.CREATED
    assert (project.photos, project.parts) == (5, 1)
    assert charges(token[0]) == 1
    state = load_state(folder / STATE_FILE_NAME)
    assert state.phase == "started"
    assert state.project.name == project.name
    assert token[1] not in (folder / STATE_FILE_NAME).read_text()


@pytest.mark.usefixtures("small_parts")
def test_rest_upload_in_several_parts(proxy, token, photo_set) -> None:
    folder = photo_set(5)

    code = upload(
        proxy, token[1], folder, "--part-size", "60000", "--chunk-size", "25000"
    )

    assert code == cli.EXIT_OK
    project = Project.objects.get(token=token[0])
    assert project.parts >= 3
    assert project.status != Project.Status.CREATED
    assert load_state(folder / STATE_FILE_NAME).api == "rest"
    assert len(proxy.paths("PATCH")) >= project.parts
    assert charges(token[0]) == 1


@pytest.mark.usefixtures("small_parts")
def test_wire_upload_in_several_parts(proxy, token, photo_set) -> None:
    folder = photo_set(5)

    assert (
        upload(proxy, token[1], folder, "--api", "wire", "--part-size", "60000")
        == cli.EXIT_OK
    )

    project = Project.objects.get(token=token[0])
    assert project.parts >= 3
    assert len([p for p in proxy.paths("POST") if p.startswith("/u/")]) == project.parts
    assert project.status != Project.Status.CREATED


@pytest.mark.usefixtures("small_parts")
@pytest.mark.parametrize(
    ("api", "marker"), [("wire", "POST /u/"), ("rest", "PATCH /api/v1/")]
)
def test_cut_mid_part_then_rerun_resumes_with_one_project_and_one_charge(
    proxy,
    token,
    photo_set,
    api: str,
    marker: str,
) -> None:
    folder = photo_set(5)
    proxy.cut(marker, 20000)

    first = upload(
        proxy, token[1], folder, "--api", api, "--retries", "1", "--part-size", "60000"
    )

    assert first == cli.EXIT_NETWORK
    assert Project.objects.get(token=token[0]).status == Project.Status.CREATED
    # when
    second = upload(
        proxy, token[1], folder, "--api", api, "--retries", "1", "--part-size", "60000"
    )
    # then
    assert second == cli.EXIT_OK
    assert Project.objects.filter(token=token[0]).count() == 1
    assert charges(token[0]) == 1
    assert Project.objects.get(token=token[0]).status != Project.Status.CREATED


def test_cut_mid_part_is_retried_in_the_same_run(proxy, token, photo_set) -> None:
    folder = photo_set(4)
    proxy.cut("POST /u/", 10000)

    assert upload(proxy, token[1], folder, "--api", "wire") == cli.EXIT_OK

    assert charges(token[0]) == 1


def test_expired_links_are_renewed(proxy, token, photo_set, monkeypatch) -> None:
    import time_machine

    folder = photo_set(4)
    with time_machine.travel("2026-01-01 10:00", tick=True) as traveller:
        proxy.cut("POST /u/", 0)
        assert upload(proxy, token[1], folder, "--api", "wire", "--retries", "1") == (
            cli.EXIT_NETWORK
        )
        traveller.shift(5 * 3600)
        # The uploader must not rely on its own clock: make it trust the stale
        # link so the server's 410 is what triggers the renewal.
        monkeypatch.setattr(session, "LINK_MAX_AGE_SECONDS", 10**9)
        posts_before = len(proxy.paths("POST"))

        assert upload(proxy, token[1], folder, "--api", "wire") == cli.EXIT_OK

    assert (
        len(proxy.paths("POST")) - posts_before == 2
    )  # the 410, then the renewed link
    assert Project.objects.filter(token=token[0]).count() == 1
    assert charges(token[0]) == 1


def test_bad_token_is_refused_once_without_retries(proxy, token, photo_set) -> None:
    folder = photo_set(2)

    code = upload(proxy, "osk_not-a-real-token", folder)

    assert code == cli.EXIT_AUTH
    assert len([line for line in proxy.requests if "getTokenInfo" in line]) == 1
    assert Project.objects.count() == 0


def test_rest_bad_token_is_refused(proxy, photo_set, db) -> None:
    folder = photo_set(2)

    assert upload(proxy, "osk_nope", folder, "--api", "rest") == cli.EXIT_AUTH
    assert Project.objects.count() == 0
