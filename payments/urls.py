from django.urls import path

from payments import views

app_name = "payments"
urlpatterns = [
    path("c2b/<str:token>/validation/", views.c2b_callback, {"kind": "validation"}, name="c2b-validation"),
    path(
        "c2b/<str:token>/confirmation/", views.c2b_callback, {"kind": "confirmation"}, name="c2b-confirmation"
    ),
    # Transaction Status answers (payments.services.status), under the same secret token.
    path(
        "c2b/<str:token>/status-result/", views.c2b_callback, {"kind": "status-result"}, name="status-result"
    ),
    path(
        "c2b/<str:token>/status-timeout/",
        views.c2b_callback,
        {"kind": "status-timeout"},
        name="status-timeout",
    ),
]
