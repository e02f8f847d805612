"""Wrappers around the outside APIs the borrower channels talk to, one class per provider."""
