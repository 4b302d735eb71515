import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """allauth keeps its rate limits (one confirmation mail per
    address per 3 minutes) in the cache."""
    cache.clear()
