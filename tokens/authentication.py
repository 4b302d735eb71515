from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tokens.models import Token
from tokens.selectors import token_get_by_key
from tokens.services import token_touch


class TokenUser(AnonymousUser):
    """The identity of a request made with a token: the token, and its owner if any."""

    def __init__(self, token: Token) -> None:
        super().__init__()
        self.token = token

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]  # a token is an identity
        return True


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <key>`` or ``Token <key>``,
    looked up by the key's sha256."""

    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[object, Token] | None:
        header = authentication.get_authorization_header(request).split()
        if (
            not header
            or header[0].lower().decode(errors="replace") not in self.keywords
        ):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the header as 'Authorization: Bearer <token>'."
            )
        try:
            key = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(
                "The token contains invalid characters."
            ) from exc
        token = token_get_by_key(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown or deactivated token.")
        token_touch(token=token)
        user = (
            token.user if token.user_id and token.user.is_active else TokenUser(token)
        )
        return user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
