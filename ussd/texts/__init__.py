"""What the borrower channels say, one module per language (``en``, ``sw``) with the same names.

Every USSD screen fits 160 GSM-7 characters after ``CON ``/``END ``, and every SMS reply one segment,
filled with the longest realistic values (``tests/ussd/test_menu.py`` and
``tests/ussd/test_sms_inbound.py`` check each).
"""

from types import ModuleType

from ussd.texts import en, sw

LANGUAGES: dict[str, ModuleType] = {"en": en, "sw": sw}


def texts_for(language: str) -> ModuleType:
    """The texts of ``language`` (a borrower's ``preferred_language``); English for anything else."""
    return LANGUAGES.get(language, en)
