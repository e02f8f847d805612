"""API authentication: ``Authorization: Bearer <token>`` or a logged-in staff session."""

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from core.exceptions import PermissionDenied
from core.models import User
from core.services import api_token_authenticate


def _require_staff(user: User) -> User:
    if not (user.is_staff or user.is_admin):
        raise PermissionDenied("this account is not staff")
    return user


class BearerTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        user = api_token_authenticate(token)
        if user is None:
            return None
        request.user = user
        return _require_staff(user)


class StaffSessionAuth(SessionAuth):
    """The Django session (CSRF-checked by ninja on unsafe methods)."""

    def authenticate(self, request: HttpRequest, key: str | None) -> User | None:
        user = request.user
        if not user.is_authenticated:
            return None
        return _require_staff(user)


api_auth = [BearerTokenAuth(), StaffSessionAuth()]
