"""gunicorn's access log with the same redaction as the application's logs: no phone number in a
query string, no callback token in a path and no credential reaches the log. Used by
gunicorn.conf.py (``logger_class``)."""

from gunicorn.glogging import Logger

from core.logfilters import redact

# Headers that carry credentials, in the atoms of request headers ("{authorization}i") and of the
# WSGI environ ("{http_authorization}e").
_CREDENTIALS = ("authorization", "cookie")


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        # Every atom: the path and query appear in several (r, U, q, and the {...}e environ copies).
        atoms = super().atoms(resp, req, environ, request_time)
        atoms = {key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()}
        # gunicorn decodes the user of HTTP Basic auth into "u": for the Daraja emulator's OAuth that
        # is the consumer key.
        atoms["u"] = "-"
        for key, value in atoms.items():
            if key.startswith("{") and value != "-" and any(word in key.lower() for word in _CREDENTIALS):
                atoms[key] = "<redacted>"
        return atoms
