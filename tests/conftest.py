import base64
from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from tokens.models import Token
from tokens.services import public_token_ensure, token_issue

GB = 1_000_000_000


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """allauth keeps its rate limits (one confirmation mail per address per 3
    minutes, sign-ups and resets per address) in the cache: each test starts clean."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def public_token(db: None) -> Token:
    return public_token_ensure()


@pytest.fixture
def make_token(db: None) -> Callable[..., tuple[Token, str]]:
    counter = iter(range(1, 10_000))

    def make(credit: int = 10 * GB, **kwargs: object) -> tuple[Token, str]:
        n = next(counter)
        defaults: dict = {
            "email": f"user{n}@example.org",
            "forename": "Ada",
            "surname": f"Maker{n}",
        }
        defaults.update(kwargs)
        return token_issue(credit=credit, **defaults)

    return make


@pytest.fixture
def private_token(make_token: Callable[..., tuple[Token, str]]) -> tuple[Token, str]:
    return make_token()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def token_client(private_token: tuple[Token, str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {private_token[1]}")
    return client


BASIC_AUTH = "Basic " + base64.b64encode(b"openscan:free").decode()
