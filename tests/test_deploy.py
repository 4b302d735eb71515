"""Production configuration: `check --deploy` is clean and
gunicorn takes 64 KB request lines."""

import contextlib
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from benchmarks.slow_clients import gunicorn_process, outside_env

ROOT = Path(__file__).resolve().parent.parent


def _prod_env(**extra: str) -> dict[str, str]:
    env = outside_env()
    env.update(
        DJANGO_SETTINGS_MODULE="openscan_portal.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="portal.example.org,127.0.0.1",
        DATABASE_URL=f"sqlite:///{ROOT}/.pytest-deploy.sqlite3",
        **extra,
    )
    return env


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_prod_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = _prod_env()
    env.pop("DJANGO_SECRET_KEY")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _gunicorn(**extra: str) -> Iterator[str]:
    """gunicorn from gunicorn.conf.py with production settings; yields its URL."""
    port = _free_port()
    env = _prod_env(PORT=str(port), WEB_CONCURRENCY="1", **extra)
    server = gunicorn_process(env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                requests.get(f"{base}/status", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(30)


def test_gunicorn_with_the_project_config_accepts_64_kb_request_lines():
    with _gunicorn(DJANGO_SECURE_SSL_REDIRECT="false") as base:
        url = f"{base}/status"
        filelist = [
            f"/home/pi/OpenScan/scans/2024-01-31_10.20.30-my vase/IMG_{i:05d}.jpg"
            for i in range(1100)
        ]
        r = requests.get(
            url, params={"filelist": filelist}, auth=("openscan", "free"), timeout=10
        )
        assert len(r.request.url) > 65_536
        assert r.status_code == 200
        assert r.json() == {"status": "online"}


def test_a_client_reaching_gunicorn_directly_cannot_claim_https():
    # The known proxy is elsewhere: this client's X-Forwarded-Proto is a lie.
    with _gunicorn(FORWARDED_ALLOW_IPS="10.9.8.7") as base:
        r = requests.get(
            f"{base}/api/v1/",
            headers={"X-Forwarded-Proto": "https"},
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 301
        assert r.headers["Location"] == f"https://{base[7:]}/api/v1/"


def test_the_configured_proxy_is_trusted_for_https():
    with _gunicorn(FORWARDED_ALLOW_IPS="127.0.0.1") as base:
        r = requests.get(
            f"{base}/api/v1/",
            headers={"X-Forwarded-Proto": "https"},
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 200
        assert r.json()["schema"] == f"https://{base[7:]}/api/schema/"


def test_reconstruct_runs_from_a_checkout_without_any_variable(tmp_path):
    # given: no DJANGO_SECRET_KEY, no DJANGO_DEBUG, an empty photo folder
    env = _prod_env()
    env.pop("DJANGO_SECRET_KEY")
    (tmp_path / "photos").mkdir()
    # when
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "reconstruct",
            str(tmp_path / "photos"),
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then: the pipeline itself answers (no photos), not the settings
    assert "Set DJANGO_SECRET_KEY" not in result.stderr
    assert "No photos were found" in result.stdout + result.stderr
