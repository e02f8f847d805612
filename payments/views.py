"""Daraja C2B callback endpoints. They parse the HTTP request and call one service."""

import logging
import time

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from core.http import client_ip, read_body_within
from payments.metrics import Outcome, answer_outcome, callback_observe
from payments.services import InboundRequest, callback_receive
from payments.services.callbacks import MAX_BODY_BYTES, config_for_token

logger = logging.getLogger(__name__)


@csrf_exempt
@transaction.non_atomic_requests  # the service commits the raw request on its own, whatever ATOMIC_REQUESTS says
def c2b_callback(request: HttpRequest, token: str, kind: str) -> JsonResponse:
    started = time.perf_counter()
    outcome = Outcome.ERROR
    try:
        response, outcome = _answer(request, token, kind)
    finally:
        callback_observe(kind=kind, outcome=outcome, seconds=time.perf_counter() - started)
    return response


def _answer(request: HttpRequest, token: str, kind: str) -> tuple[JsonResponse, str]:
    if request.method != "POST":
        # The token is checked first, so probing with other methods is logged like any wrong token.
        if config_for_token(token) is None:
            logger.warning("mpesa callback with an unknown token from %s", client_ip(request))
            return JsonResponse({"detail": "not found"}, status=404), Outcome.NOT_FOUND
        return (
            JsonResponse({"detail": "method not allowed"}, status=405, headers={"Allow": "POST"}),
            Outcome.METHOD_NOT_ALLOWED,
        )
    body, too_large = read_body_within(request, MAX_BODY_BYTES)
    answer = callback_receive(
        inbound=InboundRequest(
            kind=kind,
            token=token,
            source_ip=client_ip(request),
            headers=dict(request.headers),
            body=body,
            declared_length=too_large,
        )
    )
    if answer is None:
        return JsonResponse({"detail": "not found"}, status=404), Outcome.NOT_FOUND
    return JsonResponse(answer.body, status=answer.status), answer_outcome(answer)
