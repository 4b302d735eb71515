"""Portal benchmarks on loopback: wire API requests per second and upload ingest.

Starts the production-like server (gunicorn with gunicorn.conf.py, DEBUG off)
on a free port against a scratch database (PostgreSQL when DATABASE_URL is
set, else a temporary SQLite file), then measures:

1. getTokenInfo and getProjectInfo requests per second from N client threads;
2. one 200,000,000-byte part POSTed to its upload link: MB/s against a plain
   file copy of the same bytes on the same disk, and the server worker's peak
   memory (VmHWM) before and after.

Run: ``.venv/bin/python benchmarks/portal.py [--seconds 10] [--threads 8]``.
"""

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PART = 200_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _load(
    url: str, params: dict, seconds: float, threads: int
) -> tuple[float, int, int]:
    stop = time.monotonic() + seconds
    counts = [0] * threads
    errors = [0] * threads

    def run(i: int) -> None:
        session = requests.Session()
        session.auth = ("openscan", "free")
        while time.monotonic() < stop:
            r = session.get(url, params=params, timeout=10)
            if r.status_code == 200:
                counts[i] += 1
            else:
                errors[i] += 1

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    start = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - start
    return sum(counts) / elapsed, sum(counts), sum(errors)


def scratch_env(scratch: Path, **env_extra: str) -> dict[str, str]:
    """The production settings (DEBUG off) on loopback, storing under ``scratch``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="openscan_portal.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_LOG_LEVEL="WARNING",
        DATABASE_URL=os.environ.get("DATABASE_URL")
        or f"sqlite:///{scratch}/bench.sqlite3",
        OPENSCAN_MEDIA_ROOT=str(scratch / "media"),
    )
    env.update(env_extra)
    return env


def start_portal(
    scratch: Path, *, workers: int, **env_extra: str
) -> tuple[subprocess.Popen, str, str, dict[str, str]]:
    """Migrate a scratch database, make a private token, start gunicorn on a free port.

    Returns the server process, its base URL, the token's key and the environment.
    """
    env = scratch_env(
        scratch, DJANGO_CONN_MAX_AGE="60", WEB_CONCURRENCY=str(workers), **env_extra
    )
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
    )
    subprocess.run(
        [python, "manage.py", "bootstrap", "-v0"], cwd=ROOT, env=env, check=True
    )
    key = subprocess.run(
        [
            python,
            "manage.py",
            "create_token",
            "--email",
            f"bench-{secrets.token_hex(4)}@example.org",
            "--forename",
            "B",
            "--surname",
            "Ench",
            "--credit",
            str(10**12),
            "--limit-filesize",
            str(10**10),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

    port = _free_port()
    env["PORT"] = str(port)
    server = subprocess.Popen(
        [
            python,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "--access-logfile",
            "/dev/null",
            "openscan_portal.wsgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            requests.get(base + "/status", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.2)
    return server, base, key, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn worker processes"
    )
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="openscan-bench-"))
    server, base, key, env = start_portal(scratch, workers=args.workers)
    try:
        auth = ("openscan", "free")
        created = requests.get(
            base + "/createProject",
            auth=auth,
            timeout=30,
            params={
                "token": key,
                "project": "bench.zip",
                "photos": 100,
                "parts": 1,
                "filesize": PART,
            },
        ).json()
        print(
            f"server: gunicorn, {args.workers} workers × 4 threads, {os.cpu_count()} "
            f"cores, database {env['DATABASE_URL'].split(':')[0]}; client: "
            f"{args.threads} threads, loopback"
        )
        print(f"{'endpoint':<16}{'req/s':>10}{'requests':>10}{'errors':>8}")
        for endpoint, params in (
            ("getTokenInfo", {"token": key}),
            ("getProjectInfo", {"token": key, "project": "bench.zip"}),
        ):
            rps, n, errors = _load(
                base + "/" + endpoint, params, args.seconds, args.threads
            )
            print(f"{endpoint:<16}{rps:>10.0f}{n:>10}{errors:>8}")

        blob = scratch / "part.bin"
        with blob.open("wb") as fh:
            for _ in range(PART // (1 << 20)):
                fh.write(secrets.token_bytes(1 << 20))
            fh.write(secrets.token_bytes(PART % (1 << 20)))
        start = time.perf_counter()
        shutil.copyfile(blob, scratch / "copy.bin")
        os.sync()
        copy_s = time.perf_counter() - start
        (scratch / "copy.bin").unlink()

        workers = _children(server.pid)
        before = {pid: _vm_hwm_kb(pid) for pid in workers}
        start = time.perf_counter()
        with blob.open("rb") as fh:
            r = requests.post(
                created["ulink"][0],
                data=fh,
                timeout=600,
                headers={"Content-Type": "application/octet-stream"},
            )
        os.sync()
        upload_s = time.perf_counter() - start
        after = {pid: _vm_hwm_kb(pid) for pid in workers}
        assert r.status_code == 200, r.text
        grew = max(after[p] - before[p] for p in workers) / 1024
        peak = max(after.values()) / 1024
        print()
        print(
            f"200 MB part via upload link: {PART / upload_s / 1e6:7.1f} MB/s "
            f"({upload_s:.2f} s)"
        )
        print(
            f"plain file copy, same disk : {PART / copy_s / 1e6:7.1f} MB/s "
            f"({copy_s:.2f} s)"
        )
        print(
            f"server worker peak memory  : {peak:7.1f} MiB (grew {grew:.1f} MiB "
            "during the upload)"
        )
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
