"""The token page: the key once, then masked; regenerate;
balance, limits, usage, ledger."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from openscan_portal.public_url import public_url
from tokens import selectors, services


def _detail(request: HttpRequest, *, new_key: str | None) -> HttpResponse:
    token = selectors.token_for_user(user=request.user)
    context = {"token": token, "new_key": new_key if token else None}
    if token is not None:
        context |= {
            "available": selectors.token_credit_available(token=token),
            "used_today": selectors.token_usage_today(token=token),
            "ledger": selectors.ledger_list(token=token)[:100],
            # Rigs build wire URLs as server + "createProject": the slash stays.
            "api_base": public_url(request, "/"),
            "server_url": public_url(request, "/").rstrip("/"),
        }
    response = render(request, "tokens/detail.html", context)
    response["Cache-Control"] = "no-store"  # The page may hold the key.
    return response


@login_required
@require_GET
def token_detail(request: HttpRequest) -> HttpResponse:
    # Only the key issued at e-mail verification waits here (allauth redirects).
    return _detail(request, new_key=request.session.pop(services.NEW_KEY_SESSION, None))


@login_required
@require_POST
def token_regenerate(request: HttpRequest) -> HttpResponse:
    token = selectors.token_for_user(user=request.user)
    if token is None:
        messages.error(
            request, "This account has no token yet; verify your e-mail address first."
        )
        return redirect("tokens:detail")
    # Shown in this response only: the key never reaches the session store.
    new_key = services.token_regenerate(token=token)
    messages.success(request, "New key made. The old key stopped working just now.")
    return _detail(request, new_key=new_key)
