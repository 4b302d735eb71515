from rest_framework import exceptions
from rest_framework.request import Request

from tokens.models import Token
from tokens.selectors import token_for_user


def request_token(request: Request) -> Token:
    """The token a request acts with: the one it sent, or the signed-in person's."""
    if isinstance(request.auth, Token):
        return request.auth
    token = token_for_user(user=request.user)
    if token is None:
        raise exceptions.PermissionDenied(
            "This account has no active token yet; verify your e-mail first."
        )
    return token
