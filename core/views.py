from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for the load balancer: the process answers and the database is reachable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def api_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Anything under /api/ that no endpoint answers: the API's own error shape, not an HTML page."""
    return JsonResponse({"detail": "not found"}, status=404)
