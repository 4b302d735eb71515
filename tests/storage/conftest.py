"""Storage backends for real: moto's S3 server and a Dropbox stand-in, both on loopback.

The ``s3`` and ``dropbox`` fixtures switch ``STORAGES["default"]`` through the
``settings`` fixture; Django's ``setting_changed`` handler then drops the cached
``default_storage``, so the next access builds the backend from the new settings.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import dropbox.dropbox_client
import pytest
from django.core.cache import cache
from moto.server import ThreadedMotoServer

from tests.storage import dropbox_standin

REGION = "us-east-1"


@dataclass
class Bucket:
    client: Any
    name: str
    endpoint: str

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(settings: Any, moto_endpoint: str) -> Bucket:
    """A fresh bucket on the moto server, with the portal's storage pointed at it."""
    name = f"openscan-{uuid.uuid4().hex[:16]}"
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=name)
    settings.AWS_STORAGE_BUCKET_NAME = name
    settings.AWS_S3_ENDPOINT_URL = moto_endpoint
    settings.AWS_S3_REGION_NAME = REGION
    settings.AWS_ACCESS_KEY_ID = "testing"
    settings.AWS_SECRET_ACCESS_KEY = "testing"
    settings.AWS_S3_ADDRESSING_STYLE = "path"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage"},
    }
    return Bucket(client=client, name=name, endpoint=moto_endpoint)


@pytest.fixture
def standin() -> Iterator[dropbox_standin.Standin]:
    server, stop = dropbox_standin.serve()
    yield server
    stop()


@pytest.fixture
def dbx(
    settings: Any, standin: dropbox_standin.Standin, monkeypatch: pytest.MonkeyPatch
) -> dropbox_standin.Standin:
    """The portal's storage on Dropbox, with the SDK's HTTP sent to the stand-in."""
    # The SDK makes its own requests.Session when none is given; give it one
    # whose transport reaches the stand-in. Everything above HTTP is the real SDK.
    monkeypatch.setattr(
        dropbox.dropbox_client, "create_session", lambda *a, **k: standin.session()
    )
    settings.DROPBOX_OAUTH2_TOKEN = None
    settings.DROPBOX_OAUTH2_REFRESH_TOKEN = standin.refresh_token
    settings.DROPBOX_APP_KEY = standin.app_key
    settings.DROPBOX_APP_SECRET = standin.app_secret
    settings.DROPBOX_ROOT_PATH = "/openscan-test"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "projects.storage.DropboxStorage"},
    }
    cache.clear()
    return standin
