"""Requests that used to end in a 500 answer 4xx; the REST upload throttle works."""

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import Client
from rest_framework.test import APIClient

from projects.services import project_create

pytestmark = pytest.mark.django_db


def test_deeply_nested_json_is_a_400_not_a_recursion_error(token_client) -> None:
    body = "[" * 100_000 + "]" * 100_000

    response = token_client.post(
        "/api/v1/projects/", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "JSON nested too deeply."


def test_credit_desk_without_change_permission_is_403(
    client: Client, private_token
) -> None:
    staff = get_user_model().objects.create_user(
        "clerk", "clerk@example.org", "pw-long-enough-1", is_staff=True
    )
    client.force_login(staff)

    response = client.get(f"/admin/tokens/token/{private_token[0].pk}/adjust/")

    assert response.status_code == 403


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deletes_of_one_project_answer_204_once_and_404_otherwise(
    private_token,
) -> None:
    assert connection.vendor == "postgresql"
    token, key = private_token
    project = project_create(
        token=token, name="twice.zip", photos=3, parts=1, filesize=1000
    )
    count = 8
    barrier = threading.Barrier(count)
    outcomes: Counter = Counter()
    lock = threading.Lock()

    def delete() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        try:
            barrier.wait()
            status = client.delete(f"/api/v1/projects/{project.pk}/").status_code
        except Exception as exc:  # a raised error is the finding
            status = repr(exc)
        finally:
            connections.close_all()
        with lock:
            outcomes[status] += 1

    threads = [threading.Thread(target=delete) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert outcomes == Counter({204: 1, 404: count - 1})
    token.refresh_from_db()
    assert token.credit == 10_000_000_000  # refunded once
