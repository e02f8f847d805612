"""The staff pages, mounted under ``/payments/`` after the M-Pesa callback URLs (see ``config.urls``)."""

from django.urls import path

from admin_ui.views import actions, dashboard, mpesa, reconciliation, status, transactions

app_name = "admin_ui"
urlpatterns = [
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("transactions/", transactions.transaction_list, name="transaction-list"),
    # Before <trans_id>/, which would otherwise take "export" for a receipt number.
    path("transactions/export/", transactions.transaction_export, name="transaction-export"),
    path("transactions/<str:trans_id>/", transactions.transaction_detail, name="transaction-detail"),
    path("transactions/<str:trans_id>/reprocess/", actions.reprocess, name="transaction-reprocess"),
    path("transactions/<str:trans_id>/assign/", actions.assign, name="transaction-assign"),
    path("transactions/<str:trans_id>/review/", actions.review, name="transaction-review"),
    path("transactions/<str:trans_id>/reverse/", actions.reverse, name="transaction-reverse"),
    path("configuration/", mpesa.configuration, name="configuration"),
    path("configuration/register/", mpesa.configuration_register, name="configuration-register"),
    path("test-payment/", mpesa.test_payment, name="test-payment"),
    path("status-query/", status.status_query, name="status-query"),
    path("reconciliation/", reconciliation.reconciliation, name="reconciliation"),
]
