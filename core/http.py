"""HTTP helpers shared by every inbound channel."""

import ipaddress

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from core.models import User


def client_ip(request: HttpRequest) -> str | None:
    """The caller's address. ``X-Forwarded-For`` is honoured only when the direct peer is one of
    ``TRUSTED_PROXIES``; anyone else could write any address there. The rightmost address not
    itself a trusted proxy is the client."""
    remote = request.META.get("REMOTE_ADDR") or None
    trusted = set(settings.TRUSTED_PROXIES)
    if remote not in trusted:
        return _valid(remote)
    forwarded = [
        part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()
    ]
    for address in reversed(forwarded):
        if address not in trusted:
            return _valid(address)
    return _valid(remote)


def read_body(request: HttpRequest, *, limit: int) -> tuple[bytes, int | None]:
    """The request body, or ``(b"", length)`` when it is over ``limit`` bytes (the declared
    Content-Length, or what was read): a body that is too large is never read into memory whole."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return b"", declared
    body = request.read(limit + 1)
    if len(body) > limit:
        return b"", len(body)
    return body, None


def _valid(address: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def staff_user(request: HttpRequest) -> User:
    """The signed-in member of staff making ``request``, for views behind ``staff_member_required``
    and pages of the admin site, which let no one else through. Raises Django's ``PermissionDenied``
    (a 403) if a view that forgot that guard is reached by an anonymous visitor."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied("this page is for signed-in staff")
    return user
