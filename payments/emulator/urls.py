"""The Daraja emulator's endpoints, at the same paths as Daraja's (no trailing slash, like Daraja)."""

from django.urls import path

from payments.emulator import recovery, views

app_name = "daraja_emulator"
urlpatterns = [
    path("oauth/v1/generate", views.oauth_generate, name="oauth"),
    path("mpesa/c2b/<str:version>/registerurl", views.register_url, name="register-url"),
    path("mpesa/c2b/<str:version>/simulate", views.simulate, name="simulate"),
    path("pulltransactions/v1/register", recovery.pull_register, name="pull-register"),
    path("pulltransactions/v1/query", recovery.pull_query, name="pull-query"),
    path("mpesa/transactionstatus/v1/query", recovery.transaction_status, name="transaction-status"),
]
