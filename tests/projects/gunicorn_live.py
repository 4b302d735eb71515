"""The real server the README starts, for tests: gunicorn with gunicorn.conf.py.

It runs the production settings (DEBUG off) against the test database and the
test's media folder, and sends mail to a local SMTP sink, so a test can drive
it over HTTP and then run the worker in-process on the same rows and files.
"""

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
# The command `make run` (runportal) and production use, run from ROOT.
GUNICORN = [
    sys.executable,
    "-m",
    "gunicorn",
    "-c",
    "gunicorn.conf.py",
    "openscan_portal.wsgi:application",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Sink:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class Gunicorn:
    url: str
    host: str
    port: int
    log: Path
    mails: list[Message] = field(default_factory=list)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def get(
        self, path: str, params: dict | list | None = None, *, source: str = "127.0.0.1"
    ) -> tuple[int, dict]:
        """GET with Basic auth openscan:free from the loopback address ``source``."""
        query = urlencode(params or {}, doseq=True)
        conn = http.client.HTTPConnection(
            self.host, self.port, timeout=60, source_address=(source, 0)
        )
        try:
            conn.request(
                "GET",
                f"{path}?{query}" if query else path,
                headers={"Authorization": "Basic b3BlbnNjYW46ZnJlZQ=="},
            )
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        return response.status, _json(body)


def _json(body: bytes) -> dict:
    try:
        return requests.models.complexjson.loads(body)
    except ValueError:
        return {"raw": body[:200].decode("latin-1")}


def raw_exchange(host: str, port: int, chunks: Iterator[bytes]) -> tuple[int, bytes]:
    """Send ``chunks`` on one connection, stop at the first
    write error, read the answer.

    A server that refuses a request early closes the connection while the client
    still sends; the answer it wrote first is still in the socket to be read.
    """
    with socket.create_connection((host, port), timeout=120) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while piece := sock.recv(65536):
                data += piece
                head, _, rest = data.partition(b"\r\n\r\n")
                if _ and b"content-length:" in head.lower():
                    length = int(
                        head.lower().split(b"content-length:")[1].split(b"\r\n")[0]
                    )
                    if len(rest) >= length:
                        break
        except ConnectionResetError:
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("These tests run the real server on PostgreSQL: set DATABASE_URL.")
    return (
        f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
        f"{db['NAME']}"
    )


def start_gunicorn(log_dir: Path, **env_extra: str) -> Iterator[Gunicorn]:
    """Run gunicorn -c gunicorn.conf.py until the generator is closed."""
    sink = _Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_port()
    log = log_dir / f"gunicorn-{port}.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "OPENSCAN_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="openscan_portal.settings",
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        DJANGO_DEBUG="false",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_LOG_LEVEL="INFO",
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp.port),
        DATABASE_URL=_database_url(),
        OPENSCAN_MEDIA_ROOT=str(settings.MEDIA_ROOT),
        OPENSCAN_PUBLIC_TOKEN=settings.OPENSCAN_PUBLIC_TOKEN,
        PORT=str(port),
        WEB_CONCURRENCY="2",
        PYTHONPATH=str(ROOT),
        **env_extra,
    )
    env.pop("REDIS_URL", None)
    with log.open("wb") as out:
        server = subprocess.Popen(
            GUNICORN,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    live = Gunicorn(
        url=f"http://127.0.0.1:{port}",
        host="127.0.0.1",
        port=port,
        log=log,
        mails=sink.messages,
    )
    try:
        for _ in range(300):
            try:
                requests.get(live.url + "/status", timeout=1)
                break
            except requests.RequestException:
                if server.poll() is not None:
                    pytest.fail(f"gunicorn exited: {live.log_text()[-2000:]}")
                time.sleep(0.1)
        yield live
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        smtp.stop()
