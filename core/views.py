from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from core.health import readiness
from core.metrics import metrics_exposition, metrics_refusal


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for the load balancer: the process answers and the database is reachable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database and (when configured) Redis answer, else 503 naming which
    did not."""
    checks = readiness()
    failed = [name for name, answers in checks.items() if not answers]
    body: dict[str, object] = {
        "status": "unavailable" if failed else "ok",
        "checks": {name: "ok" if answers else "unavailable" for name, answers in checks.items()},
    }
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics (``core.metrics``), for a caller with the token or from an allowed address."""
    refused = metrics_refusal(request)
    if refused == 404:
        return JsonResponse({"detail": "not found"}, status=404)
    if refused == 401:
        return JsonResponse(
            {"detail": "a bearer token is required"}, status=401, headers={"WWW-Authenticate": "Bearer"}
        )
    if refused is not None:
        return JsonResponse({"detail": "not allowed from this address"}, status=refused)
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


def api_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Anything under /api/ that no endpoint answers: the API's own error shape, not an HTML page."""
    return JsonResponse({"detail": "not found"}, status=404)
