"""Callback URL checks: why Daraja would refuse a URL, known before any request is made."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

# Daraja refuses callback URLs containing any of these, in any case.
FORBIDDEN_URL_WORDS = ("m-pesa", "mpesa", "safaricom", "exec", "exe", "cmd", "sql", "query")
# Public tunnel testers Daraja refuses in production.
TUNNEL_HOST_SUFFIXES = (
    "ngrok.io",
    "ngrok.app",
    "ngrok-free.app",
    "ngrok-free.dev",
    "trycloudflare.com",
    "loca.lt",
    "localtunnel.me",
    "localhost.run",
    "serveo.net",
)


def callback_url_problem(url: str, *, production: bool) -> str | None:
    """Why Daraja would refuse ``url`` as a callback URL, or ``None`` if it would accept it.

    The message never repeats the URL: callback URLs carry the secret callback token.
    """
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it is not an absolute http(s) URL"
    lowered = url.lower()
    found = next((word for word in FORBIDDEN_URL_WORDS if word in lowered), None)
    if found:
        return f"it contains {found!r}, and Daraja refuses callback URLs containing any of " + ", ".join(
            FORBIDDEN_URL_WORDS
        )
    if production:
        host = parts.hostname.lower()
        if parts.scheme != "https":
            return "production callback URLs must use HTTPS"
        if host == "localhost" or _is_private_address(host):
            return "production callback URLs must be reachable from the internet"
        if any(host == suffix or host.endswith("." + suffix) for suffix in TUNNEL_HOST_SUFFIXES):
            return "Daraja refuses tunnel services (ngrok and the like) in production"
    return None


def _is_private_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global
