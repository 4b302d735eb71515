"""Slow clients against the production stack: nginx (deploy/nginx/) before gunicorn.

    python benchmarks/slow_clients.py [--bodies 250] [--heads 250] [--upload-mb 200]

Starts gunicorn from gunicorn.conf.py with production settings (DEBUG off,
PostgreSQL, Redis) behind nginx configured by deploy/nginx/openscan-proxy.conf and
nginx-events.conf, both as shipped, on 127.0.0.1 only. Then holds BODIES
connections that trickle one byte of a valid upload every 2 s and HEADS
connections that trickle a request header (reopened whenever nginx cuts them),
and prints the connections held, the latency of /status, getTokenInfo and a page
under them, and the throughput of a normal upload with and without them. With
``--direct`` the same load goes straight at gunicorn, as before the front proxy.

The pieces (``production_stack``, ``SlowClients``) are also used by
tests/test_slow_clients.py.
"""

import argparse
import contextlib
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WIRE_AUTH = ("openscan", "free")
WSGI_APP = "openscan_portal.wsgi:application"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    """Run a manage.py command with ``env``; return its output (raise on failure)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.stdout


def gunicorn_process(env: dict[str, str], *, stdout: object) -> subprocess.Popen:
    """gunicorn with the project's gunicorn.conf.py, as production starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", WSGI_APP],
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=subprocess.STDOUT,
    )


@dataclass(frozen=True)
class Stack:
    url: str  # nginx, what clients reach
    gunicorn_url: str  # gunicorn itself (127.0.0.1 only)


def _nginx_conf(workdir: Path, *, port: int, upstream_port: int) -> Path:
    """A main config around the shipped files; only addresses and paths are ours."""
    for sub in ("body", "proxy"):
        (workdir / sub).mkdir(exist_ok=True)
        (workdir / sub).chmod(0o777)  # nginx workers run as nobody when started as root
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
include {ROOT}/deploy/nginx/nginx-events.conf;
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    upstream openscan_portal {{
        server 127.0.0.1:{upstream_port};
    }}
    server {{
        listen 127.0.0.1:{port};
        include {ROOT}/deploy/nginx/openscan-proxy.conf;
    }}
}}
"""
    )
    return conf


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def outside_env() -> dict[str, str]:
    """This process's environment without the portal's own variables."""
    ours = ("DJANGO_", "OPENSCAN_")
    return {k: v for k, v in os.environ.items() if not k.startswith(ours)}


def production_env(
    *, database_url: str, redis_url: str, workdir: Path, port: int
) -> dict[str, str]:
    env = outside_env()
    env.update(
        DJANGO_SETTINGS_MODULE="openscan_portal.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        # TLS ends at nginx in production; this stack speaks plain HTTP on loopback.
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_STATIC_ROOT=str(workdir / "static"),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        OPENSCAN_MEDIA_ROOT=str(workdir / "media"),
        OPENSCAN_TRUSTED_PROXY_COUNT="1",
        PORT=str(port),
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "uploader")]),
    )
    return env


@contextlib.contextmanager
def production_stack(
    *, database_url: str, redis_url: str, workdir: Path | None = None
) -> Iterator[Stack]:
    """gunicorn (gunicorn.conf.py, production settings) behind the shipped nginx."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="openscan-stack-")) if own else workdir
    workdir.chmod(0o755)
    gport, nport = free_port(), free_port()
    env = production_env(
        database_url=database_url, redis_url=redis_url, workdir=workdir, port=gport
    )
    manage(env, "collectstatic", "--noinput", "-v0")
    log = (workdir / "gunicorn.log").open("wb")
    gunicorn = gunicorn_process(env, stdout=log)
    nginx = None
    try:
        _wait_for(f"http://127.0.0.1:{gport}/status", gunicorn)
        conf = _nginx_conf(workdir, port=nport, upstream_port=gport)
        nginx = subprocess.Popen(
            [NGINX, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "err")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(f"http://127.0.0.1:{nport}/status", nginx)
        yield Stack(
            url=f"http://127.0.0.1:{nport}", gunicorn_url=f"http://127.0.0.1:{gport}"
        )
    finally:
        for proc in (nginx, gunicorn):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        log.close()
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


class SlowClients:
    """Connections that trickle one byte every ``interval`` seconds, reopened when cut.

    ``bodies`` send the full head of a valid upload (``body_head``) at once and then
    its body one byte at a time; ``heads`` send a request head one byte at a time
    and never finish it.
    """

    def __init__(
        self,
        address: tuple[str, int],
        *,
        body_head: bytes,
        bodies: int,
        heads: int,
        interval: float = 2.0,
    ) -> None:
        self.address = address
        self.body_head = body_head
        self.interval = interval
        self.kinds = ["body"] * bodies + ["head"] * heads
        self.socks: list[socket.socket | None] = [None] * len(self.kinds)
        self.cut = {"body": 0, "head": 0}  # closed or answered by the server
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, i: int) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=5)
        except OSError:
            self.refused += 1
            self.socks[i] = None
            return
        if self.kinds[i] == "body":
            sock.sendall(self.body_head)
        else:
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sock.setblocking(False)
        self.socks[i] = sock

    def _alive(self, sock: socket.socket) -> bool:
        try:
            sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True  # nothing to read: the server is still waiting for us
        except OSError:
            return False
        return False  # end of stream, or an answer (408): the server is done with it

    def _run(self) -> None:
        while not self._stop.is_set():
            for i, sock in enumerate(self.socks):
                if self._stop.is_set():
                    break
                if sock is None or not self._alive(sock):
                    if sock is not None:
                        self.cut[self.kinds[i]] += 1
                        sock.close()
                    self._open(i)
                    continue
                try:
                    sock.send(b"x")
                except OSError:
                    self.cut[self.kinds[i]] += 1
                    sock.close()
                    self._open(i)
            self._stop.wait(self.interval)

    def held(self) -> int:
        return sum(1 for s in self.socks if s is not None and self._alive(s))

    def __enter__(self) -> "SlowClients":
        for i in range(len(self.kinds)):
            self._open(i)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for sock in self.socks:
            if sock is not None:
                sock.close()


def upload_head(stack_url: str, *, path: str, key: str, length: int) -> bytes:
    """The head of a resumable REST PATCH of ``length`` bytes at offset 0."""
    host = stack_url.split("//", 1)[1]
    return (
        f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def create_project(base: str, key: str, *, name: str, size: int) -> str:
    """A one-part project through the REST API; returns its part's upload path."""
    r = requests.post(
        f"{base}/api/v1/projects/",
        json={"name": name, "photos": 1, "filesize": size, "parts": 1},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["parts"][0]["upload_url"]


def upload(base: str, key: str, *, path: str, data: bytes, timeout: float) -> float:
    """PATCH ``data`` as the whole part; return the seconds it took (or raise)."""
    started = time.perf_counter()
    r = requests.patch(
        f"{base}{path}",
        data=data,
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
        },
        timeout=timeout,
    )
    if r.status_code != 204 or int(r.headers["Upload-Offset"]) != len(data):
        raise RuntimeError(f"upload answered {r.status_code}: {r.text[:200]}")
    return time.perf_counter() - started


def _timed(url: str, *, count: int, timeout: float, **kwargs: object) -> list[float]:
    """Seconds per GET; a request that fails or times out counts as ``inf``."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            r = requests.get(url, timeout=timeout, **kwargs)
            ok = r.status_code == 200
        except requests.RequestException:
            ok = False
        times.append(time.perf_counter() - started if ok else float("inf"))
    return times


def _summary(times: list[float]) -> str:
    done = sorted(t for t in times if t != float("inf"))
    failed = len(times) - len(done)
    if not done:
        return f"all {failed} failed or timed out"
    p95 = done[min(len(done) - 1, int(len(done) * 0.95))]
    text = (
        f"p50 {statistics.median(done) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {done[-1] * 1000:.0f} ms"
    )
    return text + (f", {failed} of {len(times)} failed/timed out" if failed else "")


def _bench_database() -> str:
    import psycopg

    url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/web_bench"
    )
    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return url


def _bench_token(env: dict[str, str]) -> str:
    manage(env, "migrate", "--noinput", "-v0")
    out = manage(
        env,
        "create_token",
        f"--email=bench-{secrets.token_hex(4)}@example.org",
        "--forename=Bench",
        "--surname=Mark",
        f"--credit={10**12}",
        f"--limit-filesize={2 * 10**9}",
    )
    return out.strip().split()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=250)
    parser.add_argument("--heads", type=int, default=250)
    parser.add_argument("--upload-mb", type=int, default=200)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument(
        "--direct", action="store_true", help="aim at gunicorn, not nginx"
    )
    args = parser.parse_args()
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
    database_url = _bench_database()
    workdir = Path(tempfile.mkdtemp(prefix="openscan-bench-"))
    key = _bench_token(
        production_env(
            database_url=database_url, redis_url=redis_url, workdir=workdir, port=0
        )
    )
    size = args.upload_mb * 1_000_000
    data = secrets.token_bytes(size)
    with production_stack(
        database_url=database_url, redis_url=redis_url, workdir=workdir
    ) as stack:
        base = stack.gunicorn_url if args.direct else stack.url
        target = "gunicorn alone" if args.direct else "nginx -> gunicorn"
        print(f"target: {target} ({base}); 1 byte every 2 s per slow connection")
        quiet_path = create_project(base, key, name="quiet.zip", size=size)
        quiet = upload(base, key, path=quiet_path, data=data, timeout=600)
        print(
            f"upload {args.upload_mb} MB, no slow clients: {quiet:.2f} s "
            f"({size / quiet / 1e6:.0f} MB/s)"
        )
        slow_path = create_project(base, key, name="slow.zip", size=1_000_000)
        busy_path = create_project(base, key, name="busy.zip", size=size)
        host, port = base.split("//", 1)[1].split(":")
        head = upload_head(base, path=slow_path, key=key, length=1_000_000)
        with SlowClients(
            (host, int(port)), body_head=head, bodies=args.bodies, heads=args.heads
        ) as slow:
            time.sleep(3)
            held_before = slow.held()
            status = _timed(f"{base}/status", count=args.requests, timeout=5)
            info = _timed(
                f"{base}/getTokenInfo",
                count=args.requests // 2,
                timeout=5,
                params={"token": key},
                auth=WIRE_AUTH,
            )
            page = _timed(f"{base}/", count=args.requests // 2, timeout=5)
            try:
                busy = upload(base, key, path=busy_path, data=data, timeout=120)
                busy_text = f"{busy:.2f} s ({size / busy / 1e6:.0f} MB/s)"
            except (requests.RequestException, RuntimeError) as exc:
                busy_text = f"failed ({type(exc).__name__})"
            held_after = slow.held()
            cut = dict(slow.cut)
            refused = slow.refused
        print(
            f"slow connections: {args.bodies} body + {args.heads} header tricklers; "
            f"held {held_before} at the start of the measurements, {held_after} at "
            f"the end; cut by the server: {cut['body']} bodies, {cut['head']} heads "
            f"(reopened); refused: {refused}"
        )
        print(f"/status under them:      {_summary(status)}")
        print(f"getTokenInfo under them: {_summary(info)}")
        print(f"page / under them:       {_summary(page)}")
        print(f"upload {args.upload_mb} MB under them: {busy_text}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
