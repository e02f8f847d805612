from django.urls import path

from payments import views

app_name = "payments"
urlpatterns = [
    path("c2b/<str:token>/validation/", views.c2b_callback, {"kind": "validation"}, name="c2b-validation"),
    path(
        "c2b/<str:token>/confirmation/", views.c2b_callback, {"kind": "confirmation"}, name="c2b-confirmation"
    ),
]
