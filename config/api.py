"""The one REST API, at /api/v1/. Each app contributes a router; errors are mapped here."""

from django.contrib.admin.views.decorators import staff_member_required
from ninja import NinjaAPI

from core.api import register_error_handlers
from core.api import router as core_router
from core.auth import api_auth
from payments.api import router as payments_router
from ussd.api import router as ussd_router

api = NinjaAPI(
    title="HAVEN GRAZURI Advance API",
    version="1",
    urls_namespace="api",
    auth=api_auth,
    docs_decorator=staff_member_required,
)
register_error_handlers(api)
api.add_router("/", core_router)
api.add_router("/", payments_router)
api.add_router("/", ussd_router)
