"""Every request Africa's Talking sends us, stored as it came before anything is done with it."""

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from ussd.models import InboundRequest

MAX_BODY_BYTES = 16 * 1024  # Africa's Talking's forms are a few hundred bytes
_HIDDEN_HEADERS = {"cookie", "authorization", "proxy-authorization"}
Hide = Callable[[str], str]  # a raw body -> the same body with what must not be stored masked


@dataclass(frozen=True, slots=True)
class RawRequest:
    """What the view read off the wire. ``too_large`` is the declared length of a body left unread."""

    kind: str
    source_ip: str | None
    headers: dict
    body: bytes
    too_large: int | None = None


class MalformedRequest(Exception):
    """The form is missing a field Africa's Talking always sends, or is not a form at all."""


def _body_text(raw: RawRequest, hide: Hide | None) -> str:
    text = raw.body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
    return hide(text) if hide is not None else text


def inbound_store(*, raw: RawRequest, hide: Hide | None = None) -> InboundRequest:
    """Store ``raw`` (credentials in headers left out; bytes that are not UTF-8 escaped; the body
    passed through ``hide``, which masks the PINs a USSD request may carry) and return the row,
    committed on its own so that it survives whatever handling it gets."""
    return InboundRequest.objects.create(
        kind=raw.kind,
        source_ip=raw.source_ip,
        headers={k: v for k, v in raw.headers.items() if k.lower() not in _HIDDEN_HEADERS},
        body=_body_text(raw, hide),
    )


def inbound_rehide(*, request: InboundRequest, raw: RawRequest, hide: Hide) -> None:
    """Store ``raw``'s body again through ``hide`` if it now hides something else: a request the
    session could not place before answering (a new session that already carries input, a text
    that does not continue it) was stored with every input masked; answering it told the session
    which of them were PINs."""
    body = _body_text(raw, hide)
    if body != request.body:
        InboundRequest.objects.filter(pk=request.pk).update(body=body)
        request.body = body


def inbound_mark(*, request: InboundRequest, outcome: str, error: str = "") -> None:
    InboundRequest.objects.filter(pk=request.pk).update(outcome=outcome, error=error[:2000])


def parse_form(body: bytes, *, required: tuple[str, ...]) -> dict[str, str]:
    """The form-encoded ``body`` as a dict of first values (blank values kept; a ``+`` decodes to a
    space, as in any form). Raises ``MalformedRequest`` when it is not UTF-8 or lacks ``required``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("the body is not UTF-8") from None
    form = {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}
    missing = [name for name in required if not form.get(name, "").strip()]
    if missing:
        raise MalformedRequest(f"missing {', '.join(missing)}")
    return form
