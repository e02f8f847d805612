"""API authentication: ``Authorization: Bearer <token>`` or a logged-in staff session."""

from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer, SessionAuth

from core.exceptions import PermissionDenied
from core.models import User
from core.services import api_token_authenticate


class InvalidToken(AuthenticationError):
    """A bearer token was sent but is unknown, revoked or belongs to an inactive user."""

    def __init__(self) -> None:
        super().__init__(message="the API token is not valid (unknown, revoked, or its user is inactive)")


def _require_staff(user: User) -> User:
    if not (user.is_staff or user.is_admin):
        raise PermissionDenied("this account is not staff")
    return user


class BearerTokenAuth(HttpBearer):
    def __call__(self, request: HttpRequest) -> User | None:
        # Parsed here rather than by HttpBearer, which logs the whole header (a credential) when
        # DEBUG is on and the scheme is not "Bearer".
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        user = api_token_authenticate(token)
        if user is None:
            # A bad token is an error even when a session cookie is also present: a client
            # that sent a token must learn it is wrong, not be served as someone else.
            raise InvalidToken()
        request.user = user
        return _require_staff(user)


class StaffSessionAuth(SessionAuth):
    """The Django session (CSRF-checked by ninja on unsafe methods)."""

    def _get_key(self, request: HttpRequest) -> str | None:
        # CSRF protects a logged-in browser; a request with no session is not logged in, and is
        # answered 401 (authentication required) rather than ninja's 403 "CSRF check Failed".
        if not request.user.is_authenticated:
            return None
        return super()._get_key(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> User | None:
        user = request.user
        if not user.is_authenticated:
            return None
        return _require_staff(user)


api_auth = [BearerTokenAuth(), StaffSessionAuth()]


def api_user(request: HttpRequest) -> User:
    """The member of staff an ``api_auth`` endpoint's request authenticated as. Ninja puts what the
    authenticator returned on ``request.auth``, an attribute Django's ``HttpRequest`` does not
    declare. Raises ``AuthenticationError`` (a 401) on an endpoint that has no authentication."""
    user = getattr(request, "auth", None)
    if not isinstance(user, User):
        raise AuthenticationError()
    return user
