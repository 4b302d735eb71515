"""OPENSCAN_STORAGE and its variables, read the way
production reads them (a fresh process)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.STORAGES['default']['BACKEND'], s.AWS_S3_ENDPOINT_URL, "
    "s.AWS_ACCESS_KEY_ID, s.DROPBOX_OAUTH2_TOKEN, s.OPENSCAN_S3_DIRECT_UPLOADS, "
    "s.OPENSCAN_DROPBOX_DIRECT_LINKS, s.OPENSCAN_DROPBOX_PART_MAX_BYTES)"
)


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "OPENSCAN_", "AWS_", "DROPBOX_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="openscan_portal.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="portal.example.org",
        DATABASE_URL=f"sqlite:///{ROOT}/.pytest-deploy.sqlite3",
        **extra,
    )
    return env


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("kind", "backend"),
    [
        ("local", "django.core.files.storage.FileSystemStorage"),
        ("s3", "storages.backends.s3.S3Storage"),
        ("dropbox", "projects.storage.DropboxStorage"),
    ],
)
def test_openscan_storage_selects_the_backend_and_empty_variables_mean_unset(
    kind, backend
):
    result = _run(
        "-c",
        PRINT,
        OPENSCAN_STORAGE=kind,
        AWS_S3_ENDPOINT_URL="",
        AWS_ACCESS_KEY_ID="",
        DROPBOX_OAUTH2_TOKEN="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        backend,
        "None",
        "None",
        "None",
        "True",
        "False",
        "157286400",
    ]


def test_an_unknown_storage_is_refused_at_start():
    result = _run("-c", PRINT, OPENSCAN_STORAGE="ftp")
    assert result.returncode != 0
    assert "OPENSCAN_STORAGE must be local, s3 or dropbox" in result.stderr


@pytest.mark.parametrize("kind", ["s3", "dropbox"])
def test_check_deploy_stays_clean_on_cloud_storage(kind):
    result = _run(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        OPENSCAN_STORAGE=kind,
        AWS_STORAGE_BUCKET_NAME="openscan",
        DROPBOX_OAUTH2_REFRESH_TOKEN="r",
        DROPBOX_APP_KEY="k",
        DROPBOX_APP_SECRET="s",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
