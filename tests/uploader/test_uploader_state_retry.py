from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
import requests
from openscan_upload.client import AuthError, NetworkError, WireClient
from openscan_upload.retry import RetryableHTTPError, RetryPolicy, parse_retry_after
from openscan_upload.state import (
    STATE_FILE_NAME,
    bytes_done,
    load_state,
    new_state,
    public_server_url,
    save_state,
    state_path,
)


def test_state_round_trip_without_secrets(tmp_path: Path) -> None:
    state = new_state("http://user:pw@portal.example:8000/base/?token=abc")
    state.server_answers["createProject"] = {
        "credit": 5,
        "token": "abc",
        "nested": [{"password": "x", "ok": 1}],
    }
    path = state_path(tmp_path)

    save_state(path, state)

    text = path.read_text()
    assert path.name == STATE_FILE_NAME
    assert "abc" not in text
    assert "pw" not in text
    assert "password" not in text
    loaded = load_state(path)
    assert loaded.server == "http://portal.example:8000/base"
    assert loaded.server_answers["createProject"] == {
        "credit": 5,
        "nested": [{"ok": 1}],
    }


def test_state_write_is_atomic_when_interrupted(tmp_path: Path, monkeypatch) -> None:
    path = state_path(tmp_path)
    state = new_state("http://s")
    save_state(path, state)
    before = path.read_bytes()

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    state.phase = "created"
    with pytest.raises(KeyboardInterrupt):
        save_state(path, state)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE_NAME]


def test_damaged_state_is_moved_aside(tmp_path: Path) -> None:
    path = state_path(tmp_path)
    path.write_text('{"schema": 1, "phase": "crea')

    assert load_state(path) is None

    assert not path.exists()
    assert len(list(tmp_path.glob(STATE_FILE_NAME + ".broken-*"))) == 1


def test_bytes_done_counts_confirmed_parts_and_partial_offsets() -> None:
    state = new_state("http://s")
    state.parts = [
        {"size": 10, "state": "done"},
        {"size": 10, "state": "pending", "received": 4},
        {"size": 5, "state": "pending"},
    ]

    assert bytes_done(state) == 14


def test_public_server_url_drops_credentials_and_query() -> None:
    assert (
        public_server_url("https://a:b@h.example/x/?token=1#f") == "https://h.example/x"
    )


@pytest.mark.parametrize(
    ("value", "expected"), [("7", 7.0), ("100000", 300.0), ("", None), ("soon", None)]
)
def test_parse_retry_after_seconds(value: str, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    value = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 12))

    assert parse_retry_after(value, now=now) == pytest.approx(12, abs=1)


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=8, rng=random.Random(3))

    delays = [policy.backoff(attempt) for attempt in range(1, 7)]

    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(8, 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def _policy(sleeps: list[float], attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, sleep=sleeps.append, rng=random.Random(0))


def test_503_then_200_is_retried(scripted_server) -> None:
    scripted_server.replies = [(503, {}, b"{}"), (200, {}, b"ok")]
    sleeps: list[float] = []

    response = _policy(sleeps).call(
        lambda: requests.get(scripted_server.url, timeout=5)
    )

    assert response.status_code == 200
    assert len(scripted_server.requests) == 2
    assert len(sleeps) == 1
    assert 0.5 <= sleeps[0] <= 1


def test_429_waits_as_long_as_retry_after_says(scripted_server) -> None:
    scripted_server.replies = [(429, {"Retry-After": "2"}, b"{}"), (200, {}, b"ok")]
    sleeps: list[float] = []

    response = _policy(sleeps).call(
        lambda: requests.get(scripted_server.url, timeout=5)
    )

    assert response.status_code == 200
    assert sleeps == [2.0]


def test_429_retry_after_is_really_waited(scripted_server) -> None:
    scripted_server.replies = [(429, {"Retry-After": "1"}, b"{}"), (200, {}, b"ok")]

    RetryPolicy().call(lambda: requests.get(scripted_server.url, timeout=5))

    (_, _, first), (_, _, second) = scripted_server.requests
    assert second - first >= 0.95


def test_gives_up_after_the_attempts(scripted_server) -> None:
    scripted_server.replies = [(502, {}, b"{}")] * 5
    sleeps: list[float] = []

    with pytest.raises(RetryableHTTPError):
        _policy(sleeps).call(lambda: requests.get(scripted_server.url, timeout=5))

    assert len(scripted_server.requests) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 413])
def test_client_errors_are_never_retried(scripted_server, status: int) -> None:
    scripted_server.replies = [(status, {}, b"{}"), (200, {}, b"ok")]
    sleeps: list[float] = []

    response = _policy(sleeps).call(
        lambda: requests.get(scripted_server.url, timeout=5)
    )

    assert response.status_code == status
    assert len(scripted_server.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("status", [408, 500, 503, 504])
def test_retryable_statuses(scripted_server, status: int) -> None:
    scripted_server.replies = [(status, {}, b"{}"), (200, {}, b"ok")]

    response = _policy([]).call(lambda: requests.get(scripted_server.url, timeout=5))

    assert response.status_code == 200
    assert len(scripted_server.requests) == 2


def test_connection_refused_is_retried_then_reported(unused_port: int) -> None:
    sleeps: list[float] = []
    client = WireClient(f"http://127.0.0.1:{unused_port}", "t", _policy(sleeps))

    with pytest.raises(NetworkError, match="after 3 attempts"):
        client.token_info()

    assert len(sleeps) == 2


def test_wire_401_on_token_check_is_an_auth_error_without_retry(
    scripted_server,
) -> None:
    scripted_server.replies = [
        (401, {}, json.dumps({"error": "invalid token"}).encode())
    ]
    sleeps: list[float] = []
    client = WireClient(scripted_server.url, "bad", _policy(sleeps))

    with pytest.raises(AuthError, match="invalid token"):
        client.token_info()

    assert len(scripted_server.requests) == 1
    assert sleeps == []


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
