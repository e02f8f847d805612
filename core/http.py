"""HTTP helpers shared by every inbound channel."""

import ipaddress
import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from core.models import User

logger = logging.getLogger(__name__)


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


def read_body_within(request: HttpRequest, limit: int) -> tuple[bytes, int | None]:
    """The request's body, or ``(b"", length)`` when it is over ``limit`` bytes (it is then never
    read into memory): the caller stores the request and refuses it. A body that stops arriving
    (gunicorn.conf.py's body timeout) is read as empty: the caller then stores the request as
    malformed, with its headers."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return b"", declared
    # A chunked body has no Content-Length, so Django reads it as empty; gunicorn's wsgi.input
    # decodes the chunks, and is read directly, under the same limit.
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    stream = request.META["wsgi.input"] if chunked else request
    try:
        body = stream.read(limit + 1)
    except OSError as exc:  # UnreadablePostError, a socket timeout: the client stopped sending
        logger.warning("request body not received from %s (%s)", client_ip(request), type(exc).__name__)
        return b"", None
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
