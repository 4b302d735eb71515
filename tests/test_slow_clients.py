"""Slow clients cannot starve the production stack: nginx (deploy/nginx/), gunicorn.

The real servers run in their production configuration (gunicorn.conf.py, DEBUG
off, PostgreSQL, Redis, the shipped nginx files); 48 connections trickle an
upload body or a request header, three times gunicorn's 16 threads, while normal
requests and an upload must still be answered. The 500-connection figures are in
benchmarks/slow_clients.py.
"""

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from django.db import connection

from benchmarks.slow_clients import (
    NGINX,
    WIRE_AUTH,
    SlowClients,
    create_project,
    production_stack,
    upload,
    upload_head,
)
from projects.models import Project, UploadChunk

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REDIS_URL = "redis://127.0.0.1:6379/6"


def _database_url() -> str:
    db = connection.settings_dict
    assert connection.vendor == "postgresql"
    return (
        f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}"
    )


def test_slow_clients_leave_the_production_stack_answering(make_token) -> None:
    assert Path(NGINX).exists(), "apt-get install nginx-light (scripts/system-deps.sh)"
    _token, key = make_token()
    workdir = Path(f"/tmp/openscan-slow-{secrets.token_hex(4)}")
    workdir.mkdir()
    try:
        with production_stack(
            database_url=_database_url(), redis_url=REDIS_URL, workdir=workdir
        ) as stack:
            trickle_path = create_project(stack.url, key, name="slow.zip", size=10**6)
            data = secrets.token_bytes(5_000_000)
            normal_path = create_project(stack.url, key, name="ok.zip", size=len(data))
            host, port = stack.url.split("//", 1)[1].split(":")
            head = upload_head(stack.url, path=trickle_path, key=key, length=10**6)

            with SlowClients(
                (host, int(port)), body_head=head, bodies=24, heads=24
            ) as slow:
                held = slow.held()
                status = requests.get(f"{stack.url}/status", timeout=10)
                info = requests.get(
                    f"{stack.url}/getTokenInfo",
                    params={"token": key},
                    auth=WIRE_AUTH,
                    timeout=10,
                )
                page = requests.get(f"{stack.url}/", timeout=10)
                upload(stack.url, key, path=normal_path, data=data, timeout=30)
                held_after = slow.held()
                bodies_cut = slow.cut["body"]

        assert held == 48
        assert status.status_code == 200
        assert status.json() == {"status": "online"}
        assert info.status_code == 200
        assert info.json()["credit"] > 0
        assert page.status_code == 200
        assert "OpenScan" in page.text
        # the trickled bodies were held by nginx the whole time, never by gunicorn
        assert bodies_cut == 0
        assert held_after >= 24
        trickled = Project.objects.get(name="slow.zip")
        assert not UploadChunk.objects.filter(project=trickled).exists()
        normal = Project.objects.get(name="ok.zip")
        assert UploadChunk.objects.get(project=normal).size == len(data)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_shipped_site_file_is_valid_nginx(tmp_path: Path) -> None:
    """deploy/nginx/ as installed by the README, checked by ``nginx -t``."""
    deploy = Path(__file__).resolve().parent.parent / "deploy" / "nginx"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *(
                "-subj",
                "/CN=portal.example.org",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    site = (deploy / "openscan-portal.conf").read_text()
    site = site.replace(
        "/etc/nginx/openscan-proxy.conf", str(deploy / "openscan-proxy.conf")
    )
    site = site.replace(
        "/etc/letsencrypt/live/portal.example.org/fullchain.pem", str(cert)
    ).replace("/etc/letsencrypt/live/portal.example.org/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\ninclude {deploy}/nginx-events.conf;\n"
        f"http {{\n    include {tmp_path}/site.conf;\n}}\n"
    )

    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "e")],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
