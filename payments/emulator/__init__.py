"""A local stand-in for Safaricom Daraja that speaks its HTTP protocol (OAuth, C2B register URL, simulate).

Mounted at ``/daraja-emulator/`` when ``MPESA_EMULATOR_ENABLED`` (default: ``DEBUG``); a configuration in the
``local`` environment talks to it through the same ``DarajaClient`` that talks to Safaricom. Its state
(tokens, registered URLs, balances) lives in Django's cache; its ledger of what the paybill was paid
(``EmulatedPayment``, callbacks delivered or not) in the database, shared by every process.
"""
