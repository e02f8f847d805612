"""API tokens: created once and shown once; only their SHA-256 digest is stored."""

import hashlib
import hmac
import secrets

from django.db.models import QuerySet
from django.utils import timezone

from core.models import ApiToken, User

TOKEN_PREFIX = "hg_"  # noqa: S105 - a public marker, not a secret


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def api_token_create(*, user: User, name: str = "", token: str | None = None) -> tuple[ApiToken, str]:
    """Create a token for ``user``. Returns the row and the token itself, which is not stored.

    ``token`` is for the demo data only (a value derived from the development secret, so every run
    prints the same working token); everything else lets this draw a random one."""
    if token is None:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    elif not token.startswith(TOKEN_PREFIX):
        raise ValueError(f"API tokens start with {TOKEN_PREFIX!r}")
    row = ApiToken.objects.create(user=user, name=name, prefix=token[:10], token_hash=_digest(token))
    return row, token


def api_token_authenticate(token: str) -> User | None:
    """The active user a bearer token belongs to, or ``None`` (unknown, revoked, inactive user)."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    digest = _digest(token)
    row = ApiToken.objects.select_related("user").filter(token_hash=digest, revoked_at__isnull=True).first()
    # The lookup is by digest; compare again in constant time so timing says nothing about near-misses.
    if row is None or not hmac.compare_digest(row.token_hash, digest) or not row.user.is_active:
        return None
    now = timezone.now()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user


def api_token_revoke(*, tokens: QuerySet[ApiToken]) -> int:
    """Revoke every token in ``tokens`` not revoked yet; returns how many were revoked."""
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
