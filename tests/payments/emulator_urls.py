"""Test URLconf: the project's URLs plus the Daraja emulator and stub callback views that record what
they receive, so emulator tests do not depend on the real callback views.

Stub behaviours (in the path): ``accept`` accepts validation, ``reject`` rejects it with C2B00012,
``echo`` accepts it with a ``ThirdPartyTransID``. Confirmation is always acknowledged.
"""

import json
import socket

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as project_urlpatterns

# (behaviour, kind, payload) in arrival order; the live server runs in a thread of this process.
received: list[tuple[str, str, dict]] = []


def payloads(kind: str) -> list[dict]:
    return [payload for _, received_kind, payload in received if received_kind == kind]


def stub_url(live_server_url: str, behaviour: str, kind: str) -> str:
    return f"{live_server_url}/stub-callbacks/{behaviour}/{kind}/"


def closed_port_url(kind: str) -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody/{kind}/"


@csrf_exempt
def stub_callback(request: HttpRequest, behaviour: str, kind: str) -> JsonResponse:
    received.append((behaviour, kind, json.loads(request.body)))
    if kind == "confirmation":
        return JsonResponse({"ResultCode": 0, "ResultDesc": "Success"})
    if behaviour == "reject":
        return JsonResponse({"ResultCode": "C2B00012", "ResultDesc": "Rejected"})
    if behaviour == "echo":
        return JsonResponse({"ResultCode": "0", "ResultDesc": "Accepted", "ThirdPartyTransID": "HVN-42"})
    return JsonResponse({"ResultCode": "0", "ResultDesc": "Accepted"})


urlpatterns = [
    path("daraja-emulator/", include("payments.emulator.urls")),
    path("stub-callbacks/<str:behaviour>/<str:kind>/", stub_callback),
    *project_urlpatterns,
]
