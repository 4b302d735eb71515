"""HTTP clients: the OpenScanCloud wire API and the portal's REST API.

All network traffic of the tool goes through this module, so a change of the
server contract stays here. Every failure is turned into one of the
`ApiError` subclasses below with a message a person can act on; callers never
see a raw requests exception.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from . import __version__
from .packing import PartReader
from .retry import (
    RetryableHTTPError,
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
)
from .validate import TokenInfo

WIRE_AUTH = ("openscan", "free")
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0
# Assumed worst uplink for a read timeout that grows with the body (a rig on a
# weak Wi-Fi): slower than this and the request is considered stalled.
MIN_UPLOAD_SPEED = 50 * 1024
REST_CHUNK_SIZE = 16 * 1024 * 1024
USER_AGENT = f"openscan-upload/{__version__}"

Progress = Callable[[int], None]


class ApiError(Exception):
    """A request failed; `str()` is a message for the user."""

    kind = "api"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(ApiError):
    """The token (or link signature) was refused: retrying cannot help."""

    kind = "auth"


class NotFoundError(ApiError):
    kind = "not_found"


class RejectedError(ApiError):
    """The server understood the request and said no (4xx)."""

    kind = "rejected"


class LinkExpiredError(ApiError):
    """An upload link is no longer valid (410 expired, 403 not accepted)."""

    kind = "link_expired"


class NetworkError(ApiError):
    """The server could not be reached, or kept failing, after every attempt."""

    kind = "network"


class ProtocolError(ApiError):
    """The server answered 2xx with something this tool does not understand."""

    kind = "protocol"


def error_message(response: requests.Response) -> str:
    """The server's own explanation: JSON `error` or `detail`, else the text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
    text = (response.text or "").strip()
    return text[:200] if text else (response.reason or f"HTTP {response.status_code}")


def raise_for(response: requests.Response, what: str) -> None:
    """Raise the ApiError matching a non-2xx answer."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message = f"{what}: {error_message(response)} (HTTP {status})"
    if status in (401, 403):
        raise AuthError(message, status)
    if status == 404:
        raise NotFoundError(message, status)
    if status == 410:
        raise LinkExpiredError(message, status)
    if is_retryable_status(status):
        raise NetworkError(message, status)
    raise RejectedError(message, status)


def json_body(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProtocolError(f"{what}: the server's answer is not a JSON object")
    return body


def upload_timeout(size: int) -> tuple[float, float]:
    return (CONNECT_TIMEOUT, max(READ_TIMEOUT, size / MIN_UPLOAD_SPEED))


class _Http:
    def __init__(
        self, server: str, policy: RetryPolicy, session: requests.Session | None
    ) -> None:
        self.server = server.rstrip("/")
        self.policy = policy
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)

    def url(self, path: str) -> str:
        return urljoin(self.server + "/", path.lstrip("/"))

    def call(
        self, what: str, send: Callable[[], requests.Response]
    ) -> requests.Response:
        """Send with retries; the final answer is returned even if it is 4xx."""
        try:
            return self.policy.call(send)
        except RetryableHTTPError as exc:
            raise NetworkError(
                f"{what}: the server kept answering HTTP {exc.response.status_code} "
                f"({error_message(exc.response)}) after {self.policy.attempts} "
                "attempts",
                exc.response.status_code,
            ) from exc
        except requests.Timeout as exc:
            raise NetworkError(
                f"{what}: no answer from {self.server} after {self.policy.attempts} "
                "attempts (timed out)"
            ) from exc
        except requests.ConnectionError as exc:
            raise NetworkError(
                f"{what}: cannot reach {self.server} after {self.policy.attempts} "
                "attempts (connection failed)"
            ) from exc

    def send_range(
        self,
        method: str,
        url: str,
        path: Path,
        offset: int,
        size: int,
        headers: dict[str, str],
        progress: Progress | None,
        auth: Any = None,
    ) -> requests.Response:
        """Stream a byte range of a file once; progress is rolled back on failure.

        The body is read from disk for every attempt, and bytes counted for a
        failed attempt are taken back from the progress bar.
        """
        sent = 0

        def on_read(count: int) -> None:
            nonlocal sent
            sent += count
            if progress is not None:
                progress(count)

        try:
            with PartReader(path, offset, size, on_read) as body:
                response = self.session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    auth=auth,
                    timeout=upload_timeout(size),
                    allow_redirects=False,
                )
        except BaseException:
            if progress is not None and sent:
                progress(-sent)
            raise
        if not 200 <= response.status_code < 300 and progress is not None and sent:
            progress(-sent)
        return response

    def pause(self, failures: int, hinted: float | None, reason: str) -> None:
        delay = hinted if hinted is not None else self.policy.backoff(failures)
        if self.policy.on_retry is not None:
            self.policy.on_retry(failures, delay, reason)
        self.policy.sleep(delay)


class WireClient(_Http):
    """The OpenScanCloud protocol: GET calls with the token in the query string."""

    api = "wire"

    def __init__(
        self,
        server: str,
        token: str,
        policy: RetryPolicy,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(server, policy, session)
        self.token = token

    def _get(self, endpoint: str, what: str, **params: Any) -> requests.Response:
        query = {"token": self.token, **params}
        return self.call(
            what,
            lambda: self.session.get(
                self.url(endpoint),
                params=query,
                auth=WIRE_AUTH,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            ),
        )

    def token_info(self) -> TokenInfo:
        response = self._get("getTokenInfo", "checking the token")
        if response.status_code in (400, 401, 403):
            raise AuthError(
                f"the token was refused: {error_message(response)} (HTTP "
                f"{response.status_code})",
                response.status_code,
            )
        raise_for(response, "checking the token")
        body = json_body(response, "checking the token")
        try:
            return TokenInfo(
                credit=int(body["credit"]),
                limit_filesize=int(body["limit_filesize"]),
                limit_photos=int(body["limit_photos"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"getTokenInfo answered without {exc}") from exc

    def create_project(
        self, name: str, photos: int, parts: int, filesize: int
    ) -> dict[str, Any]:
        response = self._get(
            "createProject",
            "creating the project",
            project=name,
            photos=photos,
            parts=parts,
            filesize=filesize,
        )
        raise_for(response, "creating the project")
        body = json_body(response, "creating the project")
        links = body.get("ulink")
        if not isinstance(links, list) or len(links) != parts:
            raise ProtocolError(
                "createProject answered "
                f"{len(links) if isinstance(links, list) else 'no'} upload links for "
                f"{parts} parts"
            )
        return body

    def upload_part(
        self,
        link: str,
        path: Path,
        offset: int,
        size: int,
        progress: Progress | None = None,
    ) -> None:
        """POST one part to its upload link (no Basic auth: the link is the credential).

        Raises:
            LinkExpiredError: the link expired (410) or was not accepted (403).
        """
        what = "uploading a part"
        response = self.call(
            what,
            lambda: self.send_range(
                "POST",
                link,
                path,
                offset,
                size,
                {"Content-Type": "application/octet-stream"},
                progress,
            ),
        )
        if response.status_code == 403:
            raise LinkExpiredError(
                f"{what}: the upload link was refused (HTTP 403)", 403
            )
        raise_for(response, what)

    def start_project(self, name: str) -> dict[str, Any]:
        response = self._get("startProject", "starting the project", project=name)
        raise_for(response, "starting the project")
        return json_body(response, "starting the project")

    def project_info(self, name: str) -> dict[str, Any]:
        """getProjectInfo; a 401 here means the project does not exist."""
        response = self._get("getProjectInfo", "asking for the project", project=name)
        if response.status_code == 401:
            raise NotFoundError(f"the server has no project named {name!r}", 401)
        raise_for(response, "asking for the project")
        return json_body(response, "asking for the project")

    def reset_project(self, name: str) -> None:
        response = self._get("resetProject", "resetting the project", project=name)
        raise_for(response, "resetting the project")


class RestClient(_Http):
    """The portal's REST API with resumable (offset-based) part uploads."""

    api = "rest"

    def __init__(
        self,
        server: str,
        token: str,
        policy: RetryPolicy,
        session: requests.Session | None = None,
        chunk_size: int = REST_CHUNK_SIZE,
    ) -> None:
        super().__init__(server, policy, session)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.chunk_size = chunk_size

    @staticmethod
    def discover(
        server: str,
        policy: RetryPolicy,
        session: requests.Session | None = None,
    ) -> dict[str, Any] | None:
        """The REST API's description, or None when the server has no usable one."""
        http = _Http(server, policy, session)
        try:
            response = http.call(
                "looking for the REST API",
                lambda: http.session.get(
                    http.url("api/v1/"),
                    timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                    allow_redirects=False,
                ),
            )
        except NetworkError:
            raise
        if response.status_code != 200:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        if (
            not isinstance(body, dict)
            or body.get("version") != 1
            or not body.get("resumable_uploads")
        ):
            return None
        return body

    def _request(
        self, method: str, path: str, what: str, **kwargs: Any
    ) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else self.url(path)
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = self.call(
            what,
            lambda: self.session.request(
                method,
                url,
                headers=headers,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=False,
                **kwargs,
            ),
        )
        if response.status_code == 401:
            raise AuthError(
                f"{what}: the token was refused ({error_message(response)}, HTTP 401)",
                401,
            )
        raise_for(response, what)
        return response

    def create_project(
        self,
        name: str,
        photos: int,
        filesize: int,
        parts: int,
        preset: str | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "name": name,
            "photos": photos,
            "filesize": filesize,
            "parts": parts,
        }
        if preset:
            payload["preset"] = preset
        response = self._request(
            "POST",
            "api/v1/projects/",
            "creating the project",
            # No Idempotency-Key: the portal recognises a retried create by its name.
            json=payload,
        )
        body = json_body(response, "creating the project")
        if not body.get("id") or not isinstance(body.get("parts"), list):
            raise ProtocolError("creating the project: the answer has no id or parts")
        if len(body["parts"]) != parts:
            raise ProtocolError(
                f"the server made {len(body['parts'])} parts, not {parts}"
            )
        return body

    def part_url(self, project_id: str, index: int) -> str:
        return self.url(f"api/v1/projects/{project_id}/parts/{index}/")

    def part_offset(self, url: str) -> int:
        response = self._request("HEAD", url, "asking how much of a part arrived")
        return _offset(response)

    def upload_part(
        self,
        url: str,
        path: Path,
        offset: int,
        size: int,
        progress: Progress | None = None,
        received: int | None = None,
    ) -> int:
        """Send what the server does not have yet of one part, in chunks.

        The server's offset is asked first (HEAD), so a rerun or a retry after a
        dropped connection continues where the server stopped, never from zero.
        Consecutive failures are capped by the policy's attempts; any progress
        resets the count.

        Returns the number of bytes the server had before this call.
        """
        what = "uploading a part"
        current = self.part_offset(url) if received is None else received
        start = current
        failures = 0
        while current < size:
            length = min(self.chunk_size, size - current)
            headers = {
                **self.headers,
                "Upload-Offset": str(current),
                "Content-Type": "application/offset+octet-stream",
            }
            try:
                response = self.send_range(
                    "PATCH", url, path, offset + current, length, headers, progress
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                failures += 1
                if failures >= self.policy.attempts:
                    raise NetworkError(
                        f"{what}: the connection to {self.server} kept failing "
                        f"({type(exc).__name__}) after {failures} attempts"
                    ) from exc
                self.pause(failures, None, "connection failed")
                current = self._resync(url, current, progress)
                continue
            if is_retryable_status(response.status_code):
                failures += 1
                if failures >= self.policy.attempts:
                    raise_for(response, what)
                self.pause(
                    failures,
                    parse_retry_after(response.headers.get("Retry-After")),
                    f"HTTP {response.status_code}",
                )
                current = self._resync(url, current, progress)
                continue
            if response.status_code == 409:
                failures += 1
                if failures > self.policy.attempts:
                    raise RejectedError(
                        f"{what}: the server keeps refusing the offset", 409
                    )
                server_offset = (
                    _offset(response)
                    if "Upload-Offset" in response.headers
                    else self.part_offset(url)
                )
                if progress is not None:
                    progress(server_offset - current)
                current = server_offset
                continue
            if response.status_code == 401:
                raise AuthError(f"{what}: the token was refused (HTTP 401)", 401)
            raise_for(response, what)
            new_offset = (
                _offset(response)
                if "Upload-Offset" in response.headers
                else (current + length)
            )
            if progress is not None and new_offset != current + length:
                progress(new_offset - current - length)
            current = new_offset
            failures = 0
        return start

    def _resync(self, url: str, current: int, progress: Progress | None) -> int:
        server_offset = self.part_offset(url)
        if progress is not None and server_offset != current:
            progress(server_offset - current)
        return server_offset

    def start(self, project_id: str) -> dict[str, Any]:
        response = self._request(
            "POST", f"api/v1/projects/{project_id}/start/", "starting the project"
        )
        try:
            return json_body(response, "starting the project")
        except ProtocolError:
            return {}

    def project(self, project_id: str) -> dict[str, Any]:
        response = self._request(
            "GET", f"api/v1/projects/{project_id}/", "asking for the project"
        )
        return json_body(response, "asking for the project")

    def reprocess(self, project_id: str, preset: str | None = None) -> dict[str, Any]:
        """Queue a finished, failed or cancelled project again from stored photos."""
        what = "processing the project again"
        response = self._request(
            "POST",
            f"api/v1/projects/{project_id}/reprocess/",
            what,
            json={"preset": preset} if preset else {},
        )
        return json_body(response, what)

    def find_project(self, name: str) -> dict[str, Any] | None:
        """The token's project called ``name`` (``.zip`` optional), or None."""
        wanted = {name, f"{name}.zip"}
        url: str | None = "api/v1/projects/?limit=50"
        while url:
            body = json_body(
                self._request("GET", url, "listing the projects"),
                "listing the projects",
            )
            for project in body.get("results") or ():
                if isinstance(project, dict) and project.get("name") in wanted:
                    return project
            url = body.get("next") if isinstance(body.get("next"), str) else None
        return None


def _offset(response: requests.Response) -> int:
    try:
        return int(response.headers["Upload-Offset"])
    except (KeyError, ValueError) as exc:
        raise ProtocolError(
            "the server did not say how many bytes it has (Upload-Offset)"
        ) from exc


def download(
    url: str,
    destination: Path,
    policy: RetryPolicy,
    session: requests.Session | None = None,
    headers: dict[str, str] | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download to `destination`, resuming a `.part` file left by an earlier try.

    `progress` is called with (bytes just received, total or None); first with
    the bytes already on disk. The file only gets its final name once complete.
    """
    http = _Http(url, policy, session)
    partial = destination.with_name(destination.name + ".part")
    destination.parent.mkdir(parents=True, exist_ok=True)

    def send() -> requests.Response:
        have = partial.stat().st_size if partial.exists() else 0
        request_headers = dict(headers or {})
        if have:
            request_headers["Range"] = f"bytes={have}-"
        return http.session.get(
            url,
            headers=request_headers,
            stream=True,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
        )

    for _ in range(policy.attempts):
        response = http.call("downloading the result", send)
        if response.status_code == 416:
            # The .part already holds everything the server has.
            response.close()
            break
        raise_for(response, "downloading the result")
        append = response.status_code == 206
        have = partial.stat().st_size if (append and partial.exists()) else 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        if progress is not None:
            progress(have, total)
        try:
            with partial.open("ab" if append else "wb") as handle:
                for block in response.iter_content(1024 * 1024):
                    handle.write(block)
                    if progress is not None:
                        progress(len(block), total)
        except (requests.ConnectionError, requests.Timeout):
            continue
        if total is None or partial.stat().st_size >= total:
            break
    else:
        raise NetworkError("downloading the result: the connection kept dropping")
    os.replace(partial, destination)
    return destination


def same_origin(url: str, server: str) -> bool:
    first, second = urlsplit(url), urlsplit(server)
    return (first.scheme, first.netloc) == (second.scheme, second.netloc)
