"""The project's one exception hierarchy. ``core.api`` maps it to HTTP in one place."""


class HavenError(Exception):
    """Base of every error the project raises on purpose. ``detail`` is safe to show a user."""

    status_code = 400

    def __init__(self, detail: str = "", **context: object) -> None:
        super().__init__(detail)
        self.detail = detail or self.__class__.__doc__ or self.__class__.__name__
        self.context = context


class InvalidInput(HavenError):
    """The input is not acceptable."""

    status_code = 422


class InvalidPhoneNumber(InvalidInput):
    """Not a Kenyan mobile number."""


class InvalidAmount(InvalidInput):
    """Not a valid amount of money."""


class NotFound(HavenError):
    """Not found."""

    status_code = 404


class PermissionDenied(HavenError):
    """You may not do this."""

    status_code = 403


class InvalidState(HavenError):
    """The object is not in a state that allows this."""

    status_code = 409


class TemporarilyUnavailable(HavenError):
    """Something this depends on is briefly unavailable; trying again later can succeed."""

    status_code = 503


class ImportFailed(HavenError):
    """An import was refused; ``errors`` lists every problem found, with its line number."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} error(s) in the file; nothing was imported")
        self.errors = errors


class ExternalServiceError(HavenError):
    """An outside service failed. ``permanent`` says whether retrying can help."""

    status_code = 502

    def __init__(self, detail: str = "", *, permanent: bool = False, **context: object) -> None:
        super().__init__(detail, **context)
        self.permanent = permanent
