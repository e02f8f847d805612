"""Core REST endpoints (loans, borrowers) and the project's error mapping."""

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Router
from ninja.errors import AuthenticationError, HttpError, ValidationError

from core.auth import InvalidToken, api_user
from core.exceptions import HavenError
from core.models import Borrower, Loan
from core.schemas import BorrowerOut, ErrorOut, LoanDetailOut
from core.selectors import borrower_get_for_user_by_phone, loan_get_for_user

router = Router(tags=["lending"])


ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


@router.get("/loans/{loan_number}", response={200: LoanDetailOut, **ERRORS})
def loan_detail(request: HttpRequest, loan_number: str) -> Loan:
    """A loan with its balances, its borrower (phone masked) and its repayments, newest first."""
    return loan_get_for_user(loan_number=loan_number, user=api_user(request))


@router.get("/borrowers", response={200: BorrowerOut, **ERRORS})
def borrower_lookup(request: HttpRequest, phone: str) -> Borrower:
    """The borrower who owns ``phone`` (``0712345678``, ``+254 712 345 678``, ``254712345678``...)."""
    return borrower_get_for_user_by_phone(phone=phone, user=api_user(request))


def register_error_handlers(api: NinjaAPI) -> None:
    """Every error leaves the API as ``{"detail": "..."}`` with its status code."""

    def unauthorized(request: HttpRequest, detail: str) -> HttpResponse:
        response = api.create_response(request, {"detail": detail}, status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response

    @api.exception_handler(HavenError)
    def haven_error(request: HttpRequest, exc: HavenError) -> HttpResponse:
        return api.create_response(request, {"detail": exc.detail}, status=exc.status_code)

    @api.exception_handler(InvalidToken)
    def invalid_token(request: HttpRequest, exc: InvalidToken) -> HttpResponse:
        return unauthorized(request, exc.message)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return unauthorized(request, "authentication required")

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return api.create_response(request, {"detail": "not found"}, status=404)

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)

    @api.exception_handler(ValidationError)
    def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        problems = "; ".join(
            f"{_field_name(error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in exc.errors
        )
        return api.create_response(request, {"detail": f"invalid input: {problems}"}, status=422)


def _field_name(location: tuple | list) -> str:
    """``("body", "payload", "reason")`` -> ``"reason"``: drop where the value came from and ninja's
    name for the body parameter, keep the field path a client recognises."""
    parts = list(location)
    if parts and parts[0] == "body":
        parts = parts[2:]
    elif parts and parts[0] in ("query", "path"):
        parts = parts[1:]
    return ".".join(str(part) for part in parts) or "request"
