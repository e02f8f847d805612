"""People's names as comparable tokens, and the keys a masked M-Pesa number is looked up by.

M-Pesa sends the payer's names (``FirstName``, ``MiddleName``, ``LastName``, usually in capitals)
and, for many paybills, the number masked: ``2547 ***** 126`` shows the first digits and the last
three. A name token is a run of letters, lower case, longer than one letter (``"Mary-Jane O'Neil"``
-> ``mary``, ``jane``, ``neil``); names fit when every token the payer gave is one of the borrower's.

The keys let the database narrow a masked number by name (``core.models.MaskedPhoneKey``): each of
a borrower's phones has, under its last three digits,

- ``126:mutai``: every token of the borrower's name;
- ``126:mutai+nicholas``: every pair of the first ``PAIRED_TOKENS`` tokens (sorted), so that two
  given names find the few phones whose name holds both, however common each is alone;
- ``126:wekesa+*``: every token past the first ``PAIRED_TOKENS`` of a longer name, which has no
  pairs with them. A lookup by a pair also reads the two tokens' ``+*`` keys, so a long name is
  found like any other, while the pairs per phone stay at most ``PAIRED_TOKENS`` choose 2.

``bench/portfolio.py`` builds the same keys in SQL for a whole portfolio; the two must agree.
"""

import re
from itertools import combinations

MASKED_KEY_DIGITS = 3  # M-Pesa's mask always shows at least the last three digits
PAIRED_TOKENS = 5
_NOT_LETTERS = re.compile(r"[^a-z]+")


def name_token_list(*parts: str) -> list[str]:
    """The distinct tokens of ``parts``, in the order they first appear: ``"NICHOLAS", "mutai"`` ->
    ``["nicholas", "mutai"]``."""
    tokens = (token for part in parts for token in _NOT_LETTERS.split((part or "").lower()) if len(token) > 1)
    return list(dict.fromkeys(tokens))


def name_tokens(*parts: str) -> set[str]:
    """The tokens of ``parts``, as a set (case, order and punctuation ignored)."""
    return set(name_token_list(*parts))


def masked_key(digits: str, *tokens: str) -> str:
    """The key of one token or a pair under the last three of ``digits``: ``("...126", "mutai",
    "nicholas")`` -> ``"126:mutai+nicholas"`` (a pair in either order gives the same key)."""
    return f"{digits[-MASKED_KEY_DIGITS:]}:" + "+".join(sorted(tokens))


def masked_overflow_key(digits: str, token: str) -> str:
    """The key of a token past the first ``PAIRED_TOKENS`` of a name: ``"126:wekesa+*"``."""
    return f"{digits[-MASKED_KEY_DIGITS:]}:{token}+*"


def masked_phone_keys(number: str, full_name: str) -> list[str]:
    """Every key of a phone ``number`` (E.164) whose borrower is called ``full_name``."""
    tokens = name_token_list(full_name)
    paired, unpaired = tokens[:PAIRED_TOKENS], tokens[PAIRED_TOKENS:]
    return [
        *(masked_key(number, token) for token in tokens),
        *(masked_key(number, first, second) for first, second in combinations(paired, 2)),
        *(masked_overflow_key(number, token) for token in unpaired),
    ]
