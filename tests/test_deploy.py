"""Production configuration: `check --deploy` is clean and gunicorn takes 64 KB request lines."""

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.projects.gunicorn_live import GUNICORN, free_port

ROOT = Path(__file__).resolve().parent.parent


def _prod_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "OPENSCAN_"))
    }
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
    assert result.returncode != 0 and "Set DJANGO_SECRET_KEY" in result.stderr


def test_gunicorn_with_the_project_config_accepts_64_kb_request_lines():
    port = free_port()
    env = _prod_env(
        PORT=str(port), WEB_CONCURRENCY="1", DJANGO_SECURE_SSL_REDIRECT="false"
    )
    server = subprocess.Popen(
        GUNICORN,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/status"
        for _ in range(100):
            try:
                requests.get(url, timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        filelist = [
            f"/home/pi/OpenScan/scans/2024-01-31_10.20.30-my vase/IMG_{i:05d}.jpg"
            for i in range(1100)
        ]
        r = requests.get(
            url, params={"filelist": filelist}, auth=("openscan", "free"), timeout=10
        )
        assert len(r.request.url) > 65_536
        assert r.status_code == 200 and r.json() == {"status": "online"}
    finally:
        server.terminate()
        server.wait(30)
