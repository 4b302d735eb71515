"""Accounts: what happens when a person's e-mail address is verified."""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from tokens.models import Token
from tokens.selectors import token_for_user
from tokens.services import token_issue


@transaction.atomic
def account_token_ensure(*, user: AbstractBaseUser) -> tuple[Token, str | None]:
    """Give a verified account its private token; return it and its key when new.

    The same kind of token ``/requestToken`` mails out, with the sign-up credit.
    A token that an earlier ``/requestToken`` sent to this verified address (not
    yet tied to an account) is adopted instead of issuing a second one, so the
    sign-up credit is granted once per address. Idempotent: an account that
    has a token keeps it and gets ``None`` as the key.
    """
    existing = token_for_user(user=user)
    if existing is not None:
        return existing, None
    email: str = user.email  # type: ignore[attr-defined]  # auth.User
    adopted = (
        Token.objects.select_for_update()
        .filter(
            kind=Token.Kind.PRIVATE,
            is_active=True,
            user__isnull=True,
            email__iexact=email,
        )
        .order_by("created_at")
        .first()
    )
    if adopted is not None:
        Token.objects.filter(pk=adopted.pk, user__isnull=True).update(user=user)
        adopted.user = user  # type: ignore[assignment]  # auth.User
        return adopted, None
    token, key = token_issue(
        user=user,
        email=email,
        forename=user.first_name,  # type: ignore[attr-defined]  # auth.User
        surname=user.last_name,  # type: ignore[attr-defined]  # auth.User
        credit=settings.OPENSCAN_SIGNUP_CREDIT,
    )
    return token, key
