"""Staff members' links to the Telegram bot: single-use link codes, linking, and reachability.

The identity lives on ``core.User`` so that ``core.services.outbox.staff_channels`` can choose a
channel without importing the bot; the bot (``bots``) calls these services.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from core.exceptions import InvalidInput, InvalidState
from core.models import User
from core.services.audit import audit_record

LINK_CODE_LIFETIME = timedelta(minutes=15)


def _code_digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def user_telegram_code_create(*, user: User, actor: Actor) -> tuple[str, str]:
    """Give ``user`` a new single-use link code, valid for 15 minutes (any earlier code stops working).

    Returns ``(code, link)``: the code (32 characters of ``A-Za-z0-9_-``, fit for a Telegram deep
    link) and ``https://t.me/<TELEGRAM_BOT_USERNAME>?start=<code>``, or ``""`` for the link while
    the bot is off (``telegram_bot_on``; the code is made all the same). Only the code's SHA-256
    digest is stored. Raises ``InvalidState`` for an inactive or non-staff user."""
    if not user.is_active or not (user.is_staff or user.is_admin):
        raise InvalidState(f"{user.get_username()} is not active staff; only active staff use the bot")
    code = secrets.token_urlsafe(24)
    user.telegram_link_code_digest = _code_digest(code)
    user.telegram_link_code_expires_at = timezone.now() + LINK_CODE_LIFETIME
    with transaction.atomic():
        user.save(update_fields=["telegram_link_code_digest", "telegram_link_code_expires_at"])
        audit_record(action="staff.telegram_code_created", actor=actor, obj=user, data={"user": user.pk})
    return code, telegram_link_url(code)


def telegram_bot_on() -> bool:
    """Whether the staff bot is configured (a token, and the username its links need)."""
    return bool(settings.TELEGRAM_BOT_TOKEN and settings.TELEGRAM_BOT_USERNAME)


# Said wherever a link code is made while the bot is off: a t.me link would name no bot.
TELEGRAM_BOT_OFF = (
    "The Telegram bot is off: TELEGRAM_BOT_TOKEN and TELEGRAM_BOT_USERNAME are not set, so there is no "
    "link to open. To turn it on, create a bot with @BotFather, set those two to its token and its "
    "username (see .env.example), restart the web server and the workers, then register the webhook "
    "(manage.py telegram_webhook set https://<host>/bots/telegram/), or in development run "
    "manage.py telegram_poll."
)


def telegram_link_url(code: str) -> str:
    """The deep link that sends ``/start <code>`` to the bot; ``""`` while the bot is off."""
    return f"https://t.me/{settings.TELEGRAM_BOT_USERNAME}?start={code}" if telegram_bot_on() else ""


def user_telegram_link(*, code: str, telegram_user_id: int, chat_id: int) -> User:
    """Link the staff member whose pending code is ``code`` to a Telegram account and private chat.

    The code is used up whatever happens next. Another staff member linked to the same Telegram
    account loses that link. Returns the linked user; raises ``InvalidInput`` when the code is
    unknown, used or expired, or its user is no longer active staff."""
    digest = _code_digest(code or "")
    now = timezone.now()
    with transaction.atomic():
        user = User.objects.select_for_update().filter(telegram_link_code_digest=digest).first()
        # Found by digest; compared again in constant time so timing says nothing about near-misses.
        if user is None or not hmac.compare_digest(user.telegram_link_code_digest or "", digest):
            raise InvalidInput("this link code is not valid")
        expires_at = user.telegram_link_code_expires_at
        user.telegram_link_code_digest = None
        user.telegram_link_code_expires_at = None
        expired = expires_at is None or expires_at < now or not user.is_active
        if expired:
            user.save(update_fields=["telegram_link_code_digest", "telegram_link_code_expires_at"])
        else:
            _link(user, telegram_user_id=telegram_user_id, chat_id=chat_id, now=now)
    if expired:
        # Raised after the commit: the code stays used up.
        raise InvalidInput("this link code has expired")
    return user


def _link(user: User, *, telegram_user_id: int, chat_id: int, now: datetime) -> None:
    User.objects.filter(telegram_user_id=telegram_user_id).exclude(pk=user.pk).update(
        telegram_user_id=None, telegram_chat_id=None, telegram_linked_at=None
    )
    user.telegram_user_id = telegram_user_id
    user.telegram_chat_id = chat_id
    user.telegram_unreachable = False
    user.telegram_linked_at = now
    user.save(
        update_fields=[
            "telegram_link_code_digest",
            "telegram_link_code_expires_at",
            "telegram_user_id",
            "telegram_chat_id",
            "telegram_unreachable",
            "telegram_linked_at",
        ]
    )
    audit_record(
        action="staff.telegram_linked",
        actor=Actor.staff(user),
        obj=user,
        data={"telegram_user_id": telegram_user_id, "chat_id": chat_id},
    )


def user_telegram_mark_unreachable(*, user_id: int, chat_id: int) -> bool:
    """Record that the bot can no longer write to ``chat_id`` (the person blocked it): their alerts go
    by SMS from now on. Returns whether anything changed (a later re-link is left alone)."""
    return bool(
        User.objects.filter(pk=user_id, telegram_chat_id=chat_id, telegram_unreachable=False).update(
            telegram_unreachable=True
        )
    )
