"""The Telegram webhook: parse the HTTP request, call one service, answer."""

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bots.services.updates import MAX_UPDATE_BYTES, InboundUpdate, telegram_update_receive
from core.http import client_ip, read_body_within


@csrf_exempt
@transaction.non_atomic_requests
def telegram_webhook(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return JsonResponse(
            {"ok": False, "detail": "method not allowed"}, status=405, headers={"Allow": "POST"}
        )
    secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    # The secret first: a body is not even read for a caller who does not know it.
    body, too_large = read_body_within(request, MAX_UPDATE_BYTES) if secret else (b"", None)
    answer = telegram_update_receive(
        inbound=InboundUpdate(
            secret=secret,
            body=body,
            headers=dict(request.headers),
            source_ip=client_ip(request),
            declared_length=too_large,
        )
    )
    return JsonResponse(answer.body, status=answer.status)
