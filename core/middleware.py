"""Project middleware."""

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware

SAFE_METHODS = ("GET", "HEAD")


class CommonMiddleware(DjangoCommonMiddleware):
    """Django's, except for a POST (or any unsafe method) to an address that lacks its trailing slash.

    Django would redirect it to the address with the slash, which loses the body (a client follows a
    301 with a GET), and with DEBUG on it raises instead (a 500). Such a request is answered 404 with
    a detail that names the right address."""

    def _lacks_slash(self, request: HttpRequest) -> bool:
        return super().should_redirect_with_slash(request)

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        return request.method in SAFE_METHODS and self._lacks_slash(request)

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if response.status_code == 404 and request.method not in SAFE_METHODS and self._lacks_slash(request):
            return JsonResponse(
                {"detail": f"not found: this address ends with a slash ({request.path}/)"}, status=404
            )
        return super().process_response(request, response)
