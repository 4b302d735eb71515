import io
import zipfile
from collections.abc import Callable

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from projects.models import Project
from tests.images import jpeg_bytes
from tokens.models import Token
from tokens.services import token_issue

PASSWORD = "turntable-Vase-2041"


@pytest.fixture
def make_person(db: None) -> Callable[..., tuple[Client, Token]]:
    counter = iter(range(1, 1000))

    def make(
        *, credit: int = 10_000_000_000, csrf: bool = False
    ) -> tuple[Client, Token]:
        n = next(counter)
        email = f"person{n}@example.org"
        user = get_user_model().objects.create_user(
            username=f"person{n}", email=email, password=PASSWORD
        )
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        token, _key = token_issue(
            user=user, email=email, forename="Ada", surname=f"P{n}", credit=credit
        )
        client = Client(enforce_csrf_checks=csrf)
        client.force_login(user)
        return client, token

    return make


def done_project(token: Token, name: str = "vase.zip") -> Project:
    """A finished project with result files in storage, as the job runner leaves it."""
    project = Project.objects.create(
        token=token,
        name=name,
        photos=2,
        filesize=1000,
        parts=1,
        status=Project.Status.DONE,
        image_count=2,
    )
    photos = io.BytesIO()
    with zipfile.ZipFile(photos, "w") as zf:
        zf.writestr("set/IMG_0001.jpg", jpeg_bytes(seed=1))
        zf.writestr("set/IMG_0002.jpg", jpeg_bytes(seed=2))
    project.input_path = default_storage.save(
        f"{project.storage_prefix}/input-1.zip", ContentFile(photos.getvalue())
    )
    project.result_path = f"{project.storage_prefix}/result-1"
    files = {
        "model.glb": b"glTF-model",
        "model_preview.glb": b"glTF-preview",
        "cameras.json": b'{"cameras": []}',
        "result.zip": b"PK",
    }
    for name_, data in files.items():
        default_storage.save(f"{project.result_path}/{name_}", ContentFile(data))
    project.progress = {
        "files": {n: len(d) for n, d in files.items()},
        "stats": {"faces": 12},
        "log": ["Done."],
    }
    project.save()
    return project
