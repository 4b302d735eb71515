"""Per-IP fairness for the public token: a burst limit, not a quota.

The daily quota is a database row changed atomically; this is a cache counter
(shared across processes with Redis, per process with the local-memory cache),
good enough to stop one address from draining the day's quota in a minute.
"""

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.throttling import ScopedRateThrottle

from openscan_portal.exceptions import ApplicationError
from tokens.models import Token


def client_ip(request: HttpRequest) -> str:
    """The client's address; behind N trusted proxies, the N-th from the right of
    X-Forwarded-For."""
    proxies = settings.OPENSCAN_TRUSTED_PROXY_COUNT
    if proxies:
        hops = [
            h.strip()
            for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if h.strip()
        ]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def public_burst_consume(*, token: Token, ip: str, amount: int) -> None:
    """Count ``amount`` bytes against ``ip``'s window; 429
    with a reason when over the limit."""
    limit = settings.OPENSCAN_PUBLIC_BURST_BYTES
    if not token.is_public or not limit:
        return
    window = settings.OPENSCAN_PUBLIC_BURST_SECONDS
    slot = int(time.time() // window)
    key = f"openscan:burst:{ip}:{slot}"
    cache.add(key, 0, timeout=window * 2)
    used = cache.incr(key, amount)
    if used > limit:
        cache.decr(key, amount)
        wait = window - int(time.time() % window)
        raise ApplicationError(
            f"This address has sent {used - amount} bytes with the public token in "
            f"the last minutes; the limit is {limit} per {window // 60} minutes so "
            f"everyone gets a share. Try again in {wait} seconds, or register for a "
            "private token.",
            status=429,
            code="burst_limit",
        )


class TokenRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle (rates in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``),
    counted per private token, per signed-in person, or per address for the
    shared public token; over the rate DRF answers 429 with ``Retry-After``.
    """

    def get_cache_key(self, request: HttpRequest, view: object) -> str:
        token = getattr(request, "auth", None)
        user = getattr(request, "user", None)
        if isinstance(token, Token) and not token.is_public:
            ident = f"token:{token.pk}"
        elif not isinstance(token, Token) and user and user.is_authenticated:
            ident = f"user:{user.pk}"
        else:
            ident = f"ip:{client_ip(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
