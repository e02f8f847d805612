"""Core REST endpoints (loans, borrowers) and the project's error mapping."""

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Router
from ninja.errors import AuthenticationError, HttpError, ValidationError

from core.exceptions import HavenError

router = Router(tags=["lending"])


def register_error_handlers(api: NinjaAPI) -> None:
    """Every error leaves the API as ``{"detail": "..."}`` with its status code."""

    @api.exception_handler(HavenError)
    def haven_error(request: HttpRequest, exc: HavenError) -> HttpResponse:
        return api.create_response(request, {"detail": exc.detail}, status=exc.status_code)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return api.create_response(request, {"detail": "authentication required"}, status=401)

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return api.create_response(request, {"detail": "not found"}, status=404)

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)

    @api.exception_handler(ValidationError)
    def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ()) if p not in ('query', 'body', 'path'))}: "
            f"{error.get('msg', 'invalid')}"
            for error in exc.errors
        )
        return api.create_response(request, {"detail": f"invalid input: {problems}"}, status=422)
