"""gunicorn's access log with the same redaction as the application's logs: no phone number in a
query string and no callback token in a path reaches the log. Used by deploy/Procfile
(``--logger-class config.gunicorn_logging.RedactingLogger``)."""

from gunicorn.glogging import Logger

from core.logfilters import redact


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        # Every atom: the path and query appear in several (r, U, q, and the {...}e environ copies).
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()}
