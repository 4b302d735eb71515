"""Streaming a request body into storage in bounded memory.

``request.body`` would hold the whole part in memory; this reads the WSGI
stream in 1 MiB chunks, hashes and counts as it goes, and refuses bodies that
are too large or end early.

The original service's ``uploader.py`` posts parts with ``files=`` under an
``application/octet-stream`` header, so its bodies are multipart envelopes in
disguise. The envelope is recognised by its first line and stripped on the fly,
so the stored bytes are the part itself.
"""

import hashlib
import re
from collections.abc import Iterator
from typing import BinaryIO

from django.core.files.base import File

from openscan_portal.exceptions import ApplicationError

CHUNK = 1 << 20
_ENVELOPE = re.compile(
    rb"\A--([0-9A-Za-z'()+_,\-./:=?]{1,70})\r\n"
    rb"Content-Disposition: *form-data;[^\r\n]*\r\n"
    rb"(?:[A-Za-z0-9-]+:[^\r\n]*\r\n)*\r\n",
    re.IGNORECASE,
)


class BodyFile(File):
    """A read-once file over a request body, for ``Storage.save``.

    ``length`` is the Content-Length; ``None`` means a body of unknown length
    (``Transfer-Encoding: chunked``, decoded by the WSGI server), read to its
    end and cut off with 413 the moment it passes ``limit``.
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        length: int | None,
        limit: int | None = None,
        name: str = "part.bin",
    ) -> None:
        super().__init__(None, name=name)
        if length is None and limit is None:
            raise ValueError("A body of unknown length needs a limit.")
        self._stream = stream
        self._left = length
        self._limit = limit
        self._finished = length == 0
        self._buffer = b""
        self._hash = hashlib.sha256()
        self._trailer: bytes | None = None
        self._held = b""
        self.bytes_read = 0
        # An upper bound; the real size is ``bytes_written``.
        self.size = length if length is not None else limit
        self.bytes_written = 0
        self._started = False

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def _raw(self, n: int) -> bytes:
        if self._finished:
            return b""
        if self._left is None and self._limit is not None:
            # One byte past the limit is enough to know the body is too large.
            data = self._stream.read(min(n, self._limit + 1 - self.bytes_read))
            self.bytes_read += len(data)
            if self.bytes_read > self._limit:
                raise ApplicationError(
                    f"A part may be at most {self._limit} bytes; this one is longer. "
                    "Split the zip into smaller parts.",
                    status=413,
                    code="part_too_large",
                )
            self._finished = not data
            return data
        data = self._stream.read(min(n, self._left))
        if not data:
            raise ApplicationError(
                f"The upload ended early: {self.bytes_read} of "
                f"{self.bytes_read + self._left} bytes arrived. Send the part again.",
                code="incomplete_body",
            )
        self._left -= len(data)
        self.bytes_read += len(data)
        self._finished = self._left == 0
        return data

    def _start(self) -> bytes:
        self._started = True
        head = b""
        # A chunked body may arrive in small pieces: gather enough to see an envelope.
        while len(head) < 8192 and not self._finished:
            head += self._raw(8192 - len(head))
        match = _ENVELOPE.match(head)
        if match:
            self._trailer = b"\r\n--" + match.group(1) + b"--"
            head = head[match.end() :]
        return head

    def _emit(self, data: bytes) -> bytes:
        if self._trailer is not None:
            # Hold back enough bytes to recognise the closing boundary at the end.
            data = self._held + data
            keep = len(self._trailer) + 2
            data, self._held = data[:-keep], data[-keep:]
            if self._finished:
                held, self._held = self._held, b""
                for ending in (self._trailer + b"\r\n", self._trailer):
                    if held.endswith(ending):
                        data += held[: -len(ending)]
                        break
                else:
                    raise ApplicationError(
                        "The multipart upload has no closing boundary; send the part "
                        "again.",
                        code="bad_body",
                    )
        self._hash.update(data)
        self.bytes_written += len(data)
        return data

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        while True:
            data = (
                self._start() if not self._started else self._raw(chunk_size or CHUNK)
            )
            out = self._emit(data) if data or self._finished else b""
            if out:
                yield out
            if self._finished:
                return

    def read(self, num_bytes: int | None = -1) -> bytes:
        # S3 and Dropbox backends read(); serve them from the same chunking.
        if not hasattr(self, "_iter"):
            self._iter = self.chunks()
        want = None if num_bytes is None or num_bytes < 0 else num_bytes
        while want is None or len(self._buffer) < want:
            try:
                self._buffer += next(self._iter)
            except StopIteration:
                break
        if want is None:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:want], self._buffer[want:]
        return out

    def multiple_chunks(self, chunk_size: int | None = None) -> bool:
        return True

    def open(self, mode: str | None = None) -> "BodyFile":
        return self

    def close(self) -> None:
        pass

    def seek(self, *args: object) -> int:
        # Backends rewind before reading; only a no-op rewind at the start is possible.
        if self.bytes_read and self._started:
            raise OSError("A request body cannot be rewound.")
        return 0

    def tell(self) -> int:
        return self.bytes_written
