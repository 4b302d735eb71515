"""Fixtures for the uploader: photos generated with Pillow and small real HTTP servers.

The servers are real `http.server` instances on 127.0.0.1 in a thread, so the
uploader's requests, retries and streaming run for real; only the portal's
behaviour is reduced to the contract (wire API and REST API) the uploader needs.
"""

from __future__ import annotations

import io
import json
import random
import re
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image, ImageDraw, ImageFilter


def _texture(size: tuple[int, int], seed: int) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", size, (128, 120, 110))
    draw = ImageDraw.Draw(image)
    for _ in range(300):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        radius = rng.randrange(4, 30)
        colour = tuple(rng.randrange(40, 220) for _ in range(3))
        draw.ellipse((x, y, x + radius, y + radius), fill=colour)
    return image


@pytest.fixture
def make_photo() -> Callable[..., bytes]:
    """Build photo bytes: textured, with chosen EXIF; `blur`, `brightness` alter it."""

    def build(
        size: tuple[int, int] = (640, 480),
        seed: int = 1,
        fmt: str = "JPEG",
        make: str | None = "OpenScan",
        model: str | None = "Mini",
        focal: float | None = 4.7,
        orientation: int | None = None,
        taken: str | None = "2024:01:31 10:20:30",
        blur: float = 0.0,
        brightness: int | None = None,
        xmp: bytes | None = None,
    ) -> bytes:
        image = _texture(size, seed)
        if blur:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        if brightness is not None:
            image = Image.new("RGB", size, (brightness,) * 3)
        exif = Image.Exif()
        if make:
            exif[0x010F] = make
        if model:
            exif[0x0110] = model
        if orientation:
            exif[0x0112] = orientation
        sub = exif.get_ifd(0x8769)
        if focal:
            sub[0x920A] = focal
        if taken:
            sub[0x9003] = taken
        out = io.BytesIO()
        options: dict[str, Any] = {"exif": exif}
        if fmt == "JPEG":
            options["quality"] = 85
        if xmp is not None:
            options["xmp"] = xmp
        image.save(out, fmt, **options)
        return out.getvalue()

    return build


@pytest.fixture
def photo_set(tmp_path: Path, make_photo: Callable[..., bytes]) -> Callable[..., Path]:
    """A folder of `count` good, distinct photos named IMG_0000.jpg..."""

    def build(
        count: int = 4, name: str = "scan", size: tuple[int, int] = (640, 480)
    ) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for index in range(count):
            (folder / f"IMG_{index:04d}.jpg").write_bytes(
                make_photo(size=size, seed=index)
            )
        return folder

    return build


# ---------------------------------------------------------------- scripted server


@dataclass
class Scripted:
    """Answers requests from a list of (status, headers, body); records what it got."""

    replies: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    requests: list[tuple[str, str, float]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def scripted_server() -> Iterator[Scripted]:
    script = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            script.requests.append((self.command, self.path, time.monotonic()))
            status, headers, body = (
                script.replies.pop(0)
                if script.replies
                else (500, {}, b'{"error": "script exhausted"}')
            )
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def do_PATCH(self) -> None:
            self._answer()

        def do_HEAD(self) -> None:
            self._answer()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    script.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield script
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- fake portal


@dataclass
class FakeProject:
    name: str
    parts: int
    filesize: int
    photos: int
    id: str = ""
    status: str = "created"
    stored: dict[int, bytes] = field(default_factory=dict)
    link_keys: list[str] = field(default_factory=list)


@dataclass
class FakePortal:
    """A reduced OpenScan Portal: wire API and, if `rest`, the REST API.

    `drops` lists, for the next upload requests in order, the number of body
    bytes to read before closing the connection without an answer (-1: let
    that request through).
    `expired` makes every upload link answer 410 until links are reissued.
    """

    url: str = ""
    token: str = "good-token"
    credit: int = 10_000_000_000
    limit_photos: int = 1000
    limit_filesize: int = 5_000_000_000
    rest: bool = False
    max_part_size: int = 200_000_000
    projects: dict[str, FakeProject] = field(default_factory=dict)
    charges: list[tuple[str, int]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    drops: list[int] = field(default_factory=list)
    expire_issued_links: bool = False
    polls_until_done: int = 1
    result: bytes = field(default_factory=lambda: _result_zip())
    lock: threading.Lock = field(default_factory=threading.Lock)

    def zip_of(self, name: str) -> bytes:
        project = self.projects[name]
        return b"".join(project.stored[index] for index in range(project.parts))


def _result_zip() -> bytes:
    """A small model zip like the portal's result (flat names)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("model.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        zf.writestr("model.mtl", "newmtl m\n")
        zf.writestr("report.json", "{}")
    return out.getvalue()


@pytest.fixture
def fake_portal() -> Iterator[FakePortal]:
    portal = FakePortal()
    counter = {"links": 0, "ids": 0, "polls": 0}

    def issue_links(project: FakeProject) -> list[str]:
        counter["links"] += 1
        project.link_keys = [
            f"k{counter['links']}x{index}" for index in range(project.parts)
        ]
        return [
            f"{portal.url}/upload/{project.name}/{index}/{key}"
            for index, key in enumerate(project.link_keys)
        ]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _json(
            self, status: int, body: Any, headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _body(self) -> bytes | None:
            length = int(self.headers.get("Content-Length") or 0)
            with portal.lock:
                drop = portal.drops.pop(0) if portal.drops else None
            if drop is not None and drop >= 0:
                self.rfile.read(min(drop, length))
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            return self.rfile.read(length)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            endpoint = url.path.strip("/")
            portal.calls.append(f"GET {endpoint}")
            if url.path.startswith("/api/v1"):
                return self._rest("GET", url.path)
            if endpoint == "result.zip":
                return self._raw(portal.result)
            if query.get("token") != portal.token:
                return self._json(400, {"error": "unknown token"})
            name = query.get("project", "")
            if endpoint == "getTokenInfo":
                return self._json(
                    200,
                    {
                        "credit": portal.credit,
                        "limit_filesize": portal.limit_filesize,
                        "limit_photos": portal.limit_photos,
                    },
                )
            if endpoint == "createProject":
                project = portal.projects.get(name)
                if project is None:
                    filesize = int(query["filesize"])
                    if filesize > portal.credit:
                        return self._json(400, {"error": "not enough credit"})
                    project = FakeProject(
                        name, int(query["parts"]), filesize, int(query["photos"])
                    )
                    portal.projects[name] = project
                    portal.credit -= filesize
                    portal.charges.append((name, filesize))
                elif project.status != "created":
                    return self._json(400, {"error": "project already started"})
                return self._json(
                    200,
                    {
                        "status": "created",
                        "ulink": issue_links(project),
                        "credit": project.filesize,
                    },
                )
            if endpoint == "getProjectInfo":
                project = portal.projects.get(name)
                if project is None:
                    return self._json(401, {"error": "no such project"})
                links = issue_links(project) if project.status == "created" else []
                return self._json(
                    200,
                    {
                        "status": self._advance(project),
                        "dlink": (
                            f"{portal.url}/result.zip"
                            if project.status == "processing done"
                            else ""
                        ),
                        "ulink": links,
                    },
                )
            if endpoint == "startProject":
                project = portal.projects.get(name)
                if project is None:
                    return self._json(400, {"error": "no such project"})
                if (
                    len(project.stored) != project.parts
                    or sum(len(data) for data in project.stored.values())
                    != project.filesize
                ):
                    return self._json(400, {"error": "parts missing"})
                project.status = "started"
                return self._json(200, {"status": "started"})
            return self._json(404, {"error": "unknown endpoint"})

        def _advance(self, project: FakeProject) -> str:
            if project.status == "started":
                counter["polls"] += 1
                if counter["polls"] >= portal.polls_until_done:
                    project.status = "processing done"
            return project.status

        def _raw(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            portal.calls.append(f"POST {url.path}")
            if url.path.startswith("/api/v1"):
                return self._rest("POST", url.path)
            match = re.fullmatch(r"/upload/(.+)/(\d+)/(\w+)", url.path)
            data = self._body()
            if data is None:
                return None
            if not match or match.group(1) not in portal.projects:
                return self._json(403, {"error": "bad link"})
            project = portal.projects[match.group(1)]
            index = int(match.group(2))
            if portal.expire_issued_links:
                return self._json(410, {"error": "link expired"})
            if project.link_keys[index] != match.group(3):
                return self._json(403, {"error": "bad link"})
            project.stored[index] = data
            return self._json(200, {})

        def do_HEAD(self) -> None:
            portal.calls.append(f"HEAD {self.path}")
            return self._rest("HEAD", urlsplit(self.path).path)

        def do_PATCH(self) -> None:
            portal.calls.append(f"PATCH {self.path}")
            return self._rest("PATCH", urlsplit(self.path).path)

        def _rest(self, method: str, path: str) -> None:
            if not portal.rest:
                return self._json(404, {"detail": "not found"})
            if path == "/api/v1/":
                return self._json(
                    200,
                    {
                        "version": 1,
                        "resumable_uploads": True,
                        "max_part_size": portal.max_part_size,
                    },
                )
            if self.headers.get("Authorization") != f"Bearer {portal.token}":
                return self._json(401, {"detail": "bad token"})
            by_id = {project.id: project for project in portal.projects.values()}
            if method == "POST" and path == "/api/v1/projects/":
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                counter["ids"] += 1
                project = FakeProject(
                    body["name"],
                    body["parts"],
                    body["filesize"],
                    body["photos"],
                    id=f"{counter['ids']:032x}",
                )
                portal.projects[project.name] = project
                portal.credit -= project.filesize
                portal.charges.append((project.name, project.filesize))
                return self._json(
                    201,
                    {
                        "id": project.id,
                        "name": project.name,
                        "status": "created",
                        "parts": [
                            {
                                "index": index,
                                "received": 0,
                                "upload_url": (
                                    f"/api/v1/projects/{project.id}/parts/{index}/"
                                ),
                            }
                            for index in range(project.parts)
                        ],
                    },
                )
            match = re.fullmatch(
                r"/api/v1/projects/(\w+)/(?:(start)/|parts/(\d+)/)?", path
            )
            if not match or match.group(1) not in by_id:
                return self._json(404, {"detail": "not found"})
            project = by_id[match.group(1)]
            if match.group(2) == "start":
                if (
                    sum(len(data) for data in project.stored.values())
                    != project.filesize
                ):
                    return self._json(400, {"error": "parts missing"})
                project.status = "started"
                return self._json(200, {"status": "queued"})
            if match.group(3) is not None:
                index = int(match.group(3))
                have = project.stored.get(index, b"")
                if method in ("HEAD", "GET"):
                    return self._json(
                        200,
                        {"index": index, "received": len(have)},
                        {"Upload-Offset": str(len(have))},
                    )
                offset = int(self.headers["Upload-Offset"])
                if offset != len(have):
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    return self._json(
                        409,
                        {"error": "stale offset"},
                        {"Upload-Offset": str(len(have))},
                    )
                data = self._body()
                if data is None:
                    return None
                project.stored[index] = have + data
                self.send_response(204)
                self.send_header("Upload-Offset", str(len(project.stored[index])))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            status = self._advance(project)
            done = status == "processing done"
            return self._json(
                200,
                {
                    "id": project.id,
                    "name": project.name,
                    "status": "done" if done else status,
                    # The portal's shapes: ``overall`` is a 0-1 fraction,
                    # ``downloads`` a list of named links.
                    "progress": {"stage": "dense", "overall": 1.0 if done else 0.1},
                    "error": "",
                    "downloads": (
                        [{"name": "result.zip", "size": 3, "url": "/result.zip"}]
                        if done
                        else []
                    ),
                    "result_url": "/result.zip" if done else "",
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    portal.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield portal
    server.shutdown()
    server.server_close()
