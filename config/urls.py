from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from config.api import api
from core.views import api_not_found, healthz, metrics, readyz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    re_path(r"^api/(?P<path>.*)$", api_not_found),
    path("payments/", include("payments.urls")),
    path("payments/", include("admin_ui.urls")),
    path("ussd/", include("ussd.urls")),
    path("bots/", include("bots.urls")),
]

if settings.MPESA_EMULATOR_ENABLED:
    urlpatterns.append(path("daraja-emulator/", include("payments.emulator.urls")))
