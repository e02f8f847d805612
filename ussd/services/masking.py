"""What a borrower typed at a PIN screen, masked wherever what they typed is kept: the raw USSD
requests (``text``), the raw end-of-session notifications and their stored ``input``.

Which inputs were typed at a PIN screen is the session's knowledge (``ussd.services.sessions.
session_pin_inputs``); this module only applies it, the same way to every place, so that the raw
request stays whole but for those inputs.
"""

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

# Not "*": that separates the inputs. A phone keypad cannot type letters, so the mask cannot be
# mistaken for something typed, and it is the same whatever was typed (a PIN's length is no hint).
PIN_MASK = "xxxx"
_SEPARATOR = re.compile(r"(\*)")
# In a form-encoded body the separator arrives as "*" or "%2A".
_RAW_SEPARATOR = re.compile(r"(\*|%2[aA])")


@dataclass(frozen=True, slots=True)
class PinInputs:
    """Which inputs of a ``*``-joined text (0-based) were typed at a PIN screen: those in ``positions``,
    and every one from ``known`` on, which the session cannot vouch for (no session, an expired one,
    a text it never saw)."""

    positions: frozenset[int] = frozenset()
    known: int = 0

    def covers(self, position: int) -> bool:
        return position in self.positions or position >= self.known


UNKNOWN = PinInputs()  # nothing known: every input is masked


def _mask(typed: str, pins: PinInputs, separator: re.Pattern[str]) -> str:
    if not typed:
        return typed  # the first request of a session: nothing typed yet
    parts = separator.split(typed)  # input, separator, input, ...
    return "".join(
        PIN_MASK if index % 2 == 0 and part and pins.covers(index // 2) else part
        for index, part in enumerate(parts)
    )


def mask_pin_inputs(typed: str, pins: PinInputs) -> str:
    """``typed`` (inputs joined by ``*``: a USSD ``text``, an end-of-session ``input``) with every
    input ``pins`` covers replaced by ``xxxx``: ``"4829*1*98"`` -> ``"xxxx*1*98"``."""
    return _mask(typed, pins, _SEPARATOR)


def mask_pin_field(body: str, *, field: str, pins: PinInputs) -> str:
    """The form-encoded ``body`` as it came, but for the value of ``field`` masked like
    ``mask_pin_inputs``: ``text=4829%2A1`` -> ``text=xxxx%2A1``. The value is masked in its raw
    form, so the rest of the body, encoding included, stays as sent. ``pins`` describes the first
    occurrence of ``field`` (the one the form is read by); any later one is masked whole."""
    pairs = body.split("&")
    seen = False
    for index, pair in enumerate(pairs):
        name, equals, value = pair.partition("=")
        if equals and unquote_plus(name) == field:
            pairs[index] = name + equals + _mask(value, UNKNOWN if seen else pins, _RAW_SEPARATOR)
            seen = True
    return "&".join(pairs)
