"""Wrappers around outside APIs, one module per provider (``daraja``: Safaricom M-Pesa).

Each has a local stand-in for development and tests: Daraja's is the emulator in ``payments.emulator``,
which speaks the same HTTP protocol and is chosen by a configuration's ``local`` environment.
"""
