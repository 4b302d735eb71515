"""An HTTP-level stand-in for the few Dropbox API endpoints the portal uses.

Dropbox's cloud cannot be reached from the test machines, so this WSGI app
answers on 127.0.0.1 with the JSON shapes of the Dropbox HTTP API (api-spec
``files.stone``/``sharing.stone``, the HTTP docs): RPC routes on
``api.dropboxapi.com`` take and return JSON; content routes on
``content.dropboxapi.com`` take ``Dropbox-API-Arg`` and a raw body; route
errors are 409 with ``{"error_summary", "error": {".tag": ...}}``.

``session()`` returns a ``requests.Session`` whose transport sends every
``https://{api,content}.dropboxapi.com`` and ``https://www.dropbox.com``
request here instead, keeping the path; the real dropbox SDK (which always
builds ``https://<host>/2/<route>``) runs unchanged on top of it.

Modelled on the documentation, not on observed Dropbox behaviour: the
temporary upload link (one-time, ``duration`` 60..14400 s, 410 once consumed
or expired, 400 unless ``Content-Type: application/octet-stream``, answer
``{"content-hash": ...}``), the content hash (SHA-256 of each 4 MiB block,
then SHA-256 of the concatenated digests), refresh-token OAuth, shared links
(409 ``shared_link_already_exists`` with the existing link's metadata).
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from requests.adapters import HTTPAdapter

API_HOST = "api.dropboxapi.com"
CONTENT_HOST = "content.dropboxapi.com"
WWW_HOST = "www.dropbox.com"
BLOCK = 4 * 1024 * 1024


def reference_content_hash(data: bytes) -> str:
    """Dropbox's documented content hash, written independently of projects.storage."""
    digests = b"".join(
        hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)
    )
    return hashlib.sha256(digests).hexdigest()


def _timestamp(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


@dataclass
class StoredFile:
    path_display: str
    data: bytes
    rev: str
    modified: float
    id: str
    reported_hash: str | None = (
        None  # set by a test to make Dropbox report another hash
    )


@dataclass
class UploadLink:
    path: str
    mode: str
    expires_at: float
    duration: float
    consumed: bool = False


@dataclass
class Standin:
    root_url: str = ""
    refresh_token: str = "standin-refresh-token"
    app_key: str = "standin-app-key"
    app_secret: str = "standin-app-secret"
    page_size: int = 500
    files: dict[str, StoredFile] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)  # path_lower -> display
    sessions: dict[str, bytearray] = field(default_factory=dict)
    upload_links: dict[str, UploadLink] = field(default_factory=dict)
    shared_links: dict[str, str] = field(default_factory=dict)  # path_lower -> url
    tokens: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (host, route)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # --- helpers for tests -------------------------------------------------

    def session(self) -> requests.Session:
        session = requests.Session()
        adapter = _LoopbackAdapter(self.root_url)
        for host in (API_HOST, CONTENT_HOST, WWW_HOST):
            session.mount(f"https://{host}/", adapter)
        return session

    def paths_under(self, prefix: str) -> list[str]:
        prefix = prefix.lower().rstrip("/") + "/"
        return sorted(
            f.path_display for p, f in self.files.items() if p.startswith(prefix)
        )

    def read(self, path: str) -> bytes:
        return self.files[path.lower()].data

    # --- the WSGI app ------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        host = environ.get("HTTP_X_STANDIN_HOST", "")
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        with self.lock:
            self.calls.append((host, path))
            try:
                status, headers, payload = self._dispatch(host, path, environ, body)
            except _Reply as reply:
                status, headers, payload = reply.status, reply.headers, reply.payload
        start_response(status, headers)
        return [payload]

    def _dispatch(
        self, host: str, path: str, environ: dict[str, Any], body: bytes
    ) -> tuple[str, list, bytes]:
        if host == API_HOST and path == "/oauth2/token":
            return self._oauth_token(body)
        if host == CONTENT_HOST and path.startswith("/apitul/1/"):
            return self._upload_link_consume(
                path.removeprefix("/apitul/1/"), environ, body
            )
        if host == WWW_HOST and path.startswith("/scl/fi/"):
            return self._shared_download(path, environ)
        self._check_auth(environ)
        if host == API_HOST:
            routes = {
                "/2/files/get_metadata": self._get_metadata,
                "/2/files/delete_v2": self._delete,
                "/2/files/list_folder": self._list_folder,
                "/2/files/list_folder/continue": self._list_folder_continue,
                "/2/files/get_temporary_upload_link": self._get_temporary_upload_link,
                "/2/sharing/create_shared_link_with_settings": self._create_shared_link,
            }
            if path in routes:
                if environ.get("CONTENT_TYPE") != "application/json":
                    raise _Reply.text(
                        400, "Error in call: bad Content-Type for an RPC route"
                    )
                return _json(200, routes[path](json.loads(body or b"null")))
        if host == CONTENT_HOST:
            arg = json.loads(environ.get("HTTP_DROPBOX_API_ARG") or "null")
            if path == "/2/files/upload":
                return _json(200, self._commit(arg, bytes(body)))
            if path == "/2/files/upload_session/start":
                session_id = secrets.token_hex(8)
                self.sessions[session_id] = bytearray(body)
                return _json(200, {"session_id": session_id})
            if path == "/2/files/upload_session/append_v2":
                self._session_append(arg["cursor"], body)
                return _json(200, None)
            if path == "/2/files/upload_session/finish":
                self._session_append(arg["cursor"], body)
                data = self.sessions.pop(arg["cursor"]["session_id"])
                return _json(200, self._commit(arg["commit"], bytes(data)))
            if path == "/2/files/download":
                stored = self._file(arg["path"], tag="path")
                return (
                    "200 OK",
                    [
                        ("Content-Type", "application/octet-stream"),
                        ("Dropbox-API-Result", json.dumps(self._file_metadata(stored))),
                    ],
                    stored.data,
                )
        raise _Reply.text(404, f"Unknown route {host}{path}")

    # --- auth ---------------------------------------------------------------

    def _oauth_token(self, body: bytes) -> tuple[str, list, bytes]:
        form = dict(urllib.parse.parse_qsl(body.decode()))
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != self.refresh_token
            or form.get("client_id") != self.app_key
            or form.get("client_secret") != self.app_secret
        ):
            return _json(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "refresh token is malformed",
                },
            )
        token = "sl.standin-" + secrets.token_hex(8)
        self.tokens.add(token)
        return _json(
            200, {"access_token": token, "token_type": "bearer", "expires_in": 14400}
        )

    def _check_auth(self, environ: dict[str, Any]) -> None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if (
            not auth.startswith("Bearer ")
            or auth.removeprefix("Bearer ") not in self.tokens
        ):
            raise _Reply.json(
                401,
                {
                    "error_summary": "invalid_access_token/",
                    "error": {".tag": "invalid_access_token"},
                },
            )

    # --- files ----------------------------------------------------------------

    def _file(self, path: str, *, tag: str) -> StoredFile:
        stored = self.files.get(path.lower())
        if stored is None:
            raise _Reply.json(
                409,
                {
                    "error_summary": f"{tag}/not_found/..",
                    "error": {".tag": tag, tag: {".tag": "not_found"}},
                },
            )
        return stored

    def _file_metadata(self, stored: StoredFile) -> dict[str, Any]:
        return {
            ".tag": "file",
            "name": stored.path_display.rsplit("/", 1)[-1],
            "id": stored.id,
            "client_modified": _timestamp(stored.modified),
            "server_modified": _timestamp(stored.modified),
            "rev": stored.rev,
            "size": len(stored.data),
            "path_lower": stored.path_display.lower(),
            "path_display": stored.path_display,
            "is_downloadable": True,
            "content_hash": stored.reported_hash or reference_content_hash(stored.data),
        }

    def _folder_metadata(self, path_lower: str) -> dict[str, Any]:
        display = self.folders[path_lower]
        return {
            ".tag": "folder",
            "name": display.rsplit("/", 1)[-1],
            "id": "id:folder-"
            + hashlib.sha1(path_lower.encode(), usedforsecurity=False).hexdigest()[:12],
            "path_lower": path_lower,
            "path_display": display,
        }

    def _commit(self, commit: dict[str, Any], data: bytes) -> dict[str, Any]:
        path = commit["path"]
        mode = commit.get("mode", "add")
        mode = mode[".tag"] if isinstance(mode, dict) else mode
        if path.lower() in self.files and mode == "add":
            raise _Reply.json(
                409,
                {
                    "error_summary": "path/conflict/file/..",
                    "error": {
                        ".tag": "path",
                        "reason": {".tag": "conflict", "conflict": {".tag": "file"}},
                    },
                },
            )
        parts = path.split("/")
        for i in range(2, len(parts)):
            folder = "/".join(parts[:i])
            self.folders.setdefault(folder.lower(), folder)
        previous = self.files.get(path.lower())
        stored = StoredFile(
            path_display=path,
            data=data,
            rev=f"{next(self._ids):015x}",
            modified=time.time(),
            id=previous.id if previous else f"id:standin{next(self._ids)}",
        )
        self.files[path.lower()] = stored
        return self._file_metadata(stored)

    def _session_append(self, cursor: dict[str, Any], data: bytes) -> None:
        buffer = self.sessions.get(cursor["session_id"])
        if buffer is None:
            raise _Reply.json(
                409, {"error_summary": "not_found/", "error": {".tag": "not_found"}}
            )
        if cursor["offset"] != len(buffer):
            raise _Reply.json(
                409,
                {
                    "error_summary": "incorrect_offset/",
                    "error": {
                        ".tag": "incorrect_offset",
                        "correct_offset": len(buffer),
                    },
                },
            )
        buffer.extend(data)

    def _get_metadata(self, arg: dict[str, Any]) -> dict[str, Any]:
        lower = arg["path"].lower()
        if lower in self.folders:
            return self._folder_metadata(lower)
        return self._file_metadata(self._file(arg["path"], tag="path"))

    def _delete(self, arg: dict[str, Any]) -> dict[str, Any]:
        lower = arg["path"].lower()
        if lower in self.folders:
            meta = self._folder_metadata(lower)
            for key in [k for k in self.files if k.startswith(lower + "/")]:
                del self.files[key]
            for key in [
                k for k in self.folders if k == lower or k.startswith(lower + "/")
            ]:
                del self.folders[key]
            return {"metadata": meta}
        stored = self._file(arg["path"], tag="path_lookup")
        del self.files[lower]
        return {"metadata": self._file_metadata(stored)}

    def _entries(self, folder: str) -> list[dict[str, Any]]:
        folder = folder.lower()
        if folder and folder not in self.folders:
            raise _Reply.json(
                409,
                {
                    "error_summary": "path/not_found/..",
                    "error": {".tag": "path", "path": {".tag": "not_found"}},
                },
            )
        entries = [
            self._folder_metadata(p)
            for p in sorted(self.folders)
            if p.rsplit("/", 1)[0] == folder
        ]
        entries += [
            self._file_metadata(f)
            for p, f in sorted(self.files.items())
            if p.rsplit("/", 1)[0] == folder
        ]
        return entries

    def _page(self, folder: str, start: int) -> dict[str, Any]:
        entries = self._entries(folder)
        end = start + self.page_size
        cursor = json.dumps({"folder": folder, "start": end})
        return {
            "entries": entries[start:end],
            "cursor": cursor,
            "has_more": end < len(entries),
        }

    def _list_folder(self, arg: dict[str, Any]) -> dict[str, Any]:
        return self._page(arg["path"], 0)

    def _list_folder_continue(self, arg: dict[str, Any]) -> dict[str, Any]:
        cursor = json.loads(arg["cursor"])
        return self._page(cursor["folder"], cursor["start"])

    # --- temporary upload links -------------------------------------------------

    def _get_temporary_upload_link(self, arg: dict[str, Any]) -> dict[str, Any]:
        duration = float(arg.get("duration", 14400.0))
        if not 60 <= duration <= 14400:
            raise _Reply.text(
                400, "Error in call: duration must be between 60 and 14400"
            )
        commit = arg["commit_info"]
        mode = commit.get("mode", "add")
        link_id = secrets.token_urlsafe(18)
        self.upload_links[link_id] = UploadLink(
            path=commit["path"],
            mode=mode[".tag"] if isinstance(mode, dict) else mode,
            expires_at=time.time() + duration,
            duration=duration,
        )
        return {"link": f"https://{CONTENT_HOST}/apitul/1/{link_id}"}

    def _upload_link_consume(
        self, link_id: str, environ: dict[str, Any], body: bytes
    ) -> tuple[str, list, bytes]:
        if environ["REQUEST_METHOD"] != "POST":
            raise _Reply.text(405, "Use POST")
        link = self.upload_links.get(link_id)
        if link is None:
            raise _Reply.text(404, "Not found")
        if link.consumed or time.time() > link.expires_at:
            raise _Reply.text(410, "This link has expired or has already been used")
        if (
            environ.get("CONTENT_TYPE", "").split(";")[0].strip()
            != "application/octet-stream"
        ):
            raise _Reply.text(400, "Bad Content-Type: use application/octet-stream")
        link.consumed = True
        stored = self._commit({"path": link.path, "mode": link.mode}, bytes(body))
        return _json(200, {"content-hash": stored["content_hash"]})

    # --- shared links -------------------------------------------------------------

    def _create_shared_link(self, arg: dict[str, Any]) -> dict[str, Any]:
        stored = self._file(arg["path"], tag="path")
        lower = arg["path"].lower()
        if lower in self.shared_links:
            raise _Reply.json(
                409,
                {
                    "error_summary": "shared_link_already_exists/metadata/..",
                    "error": {
                        ".tag": "shared_link_already_exists",
                        "shared_link_already_exists": {
                            ".tag": "metadata",
                            "metadata": self._link_metadata(
                                stored, self.shared_links[lower]
                            ),
                        },
                    },
                },
            )
        name = urllib.parse.quote(stored.path_display.rsplit("/", 1)[-1])
        url = f"https://{WWW_HOST}/scl/fi/{secrets.token_hex(10)}/{name}?rlkey={secrets.token_hex(8)}&dl=0"
        self.shared_links[lower] = url
        return self._link_metadata(stored, url)

    def _link_metadata(self, stored: StoredFile, url: str) -> dict[str, Any]:
        return {
            ".tag": "file",
            "url": url,
            "id": stored.id,
            "name": stored.path_display.rsplit("/", 1)[-1],
            "path_lower": stored.path_display.lower(),
            "link_permissions": {
                "can_revoke": True,
                "visibility_policies": [],
                "can_set_expiry": False,
                "can_remove_expiry": False,
                "allow_download": True,
                "can_allow_download": True,
                "can_disallow_download": False,
                "allow_comments": False,
                "team_restricts_comments": False,
                "resolved_visibility": {".tag": "public"},
            },
            "client_modified": _timestamp(stored.modified),
            "server_modified": _timestamp(stored.modified),
            "rev": stored.rev,
            "size": len(stored.data),
        }

    def _shared_download(
        self, path: str, environ: dict[str, Any]
    ) -> tuple[str, list, bytes]:
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        for lower, url in self.shared_links.items():
            if urllib.parse.urlsplit(url).path == path and lower in self.files:
                if query.get("dl") != ["1"]:
                    return (
                        "200 OK",
                        [("Content-Type", "text/html")],
                        b"<html>preview page</html>",
                    )
                return (
                    "200 OK",
                    [("Content-Type", "application/binary")],
                    self.files[lower].data,
                )
        raise _Reply.text(404, "Not found")


class _Reply(Exception):  # noqa: N818  # a control-flow signal, not an error
    def __init__(self, status: str, headers: list, payload: bytes) -> None:
        self.status, self.headers, self.payload = status, headers, payload

    @classmethod
    def json(cls, code: int, data: Any) -> _Reply:
        return cls(*_json(code, data))

    @classmethod
    def text(cls, code: int, message: str) -> _Reply:
        return cls(
            _status(code),
            [("Content-Type", "text/plain; charset=utf-8")],
            message.encode(),
        )


def _status(code: int) -> str:
    return f"{code} {requests.status_codes._codes.get(code, ('X',))[0].upper()}"


def _json(code: int, data: Any) -> tuple[str, list, bytes]:
    return (
        _status(code),
        [("Content-Type", "application/json")],
        json.dumps(data).encode(),
    )


class _LoopbackAdapter(HTTPAdapter):
    """Sends https://<dropbox host>/<path> to the stand-in,
    naming the host in a header."""

    def __init__(self, root_url: str) -> None:
        super().__init__()
        self._root = root_url.rstrip("/")

    def send(
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        parts = urllib.parse.urlsplit(request.url)
        request.headers["X-Standin-Host"] = parts.hostname or ""
        request.url = self._root + urllib.parse.urlunsplit(
            ("", "", parts.path, parts.query, "")
        )
        kwargs.pop("verify", None)
        return super().send(request, **kwargs)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._handle, args=(request, client_address), daemon=True
        )
        thread.start()

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def serve() -> tuple[Standin, Any]:
    """Start a stand-in on a free loopback port; return it
    and a function that stops it."""
    standin = Standin()
    server = make_server(
        "127.0.0.1",
        0,
        standin,
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    standin.root_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return standin, stop
