"""Africa's Talking's callbacks: USSD, its end-of-session notifications, incoming SMS, delivery reports."""

from django.urls import path

from ussd import views

app_name = "ussd"
urlpatterns = [
    path("callback/", views.ussd_callback, name="callback"),
    path("events/", views.ussd_events, name="events"),
    path("sms/inbound/", views.sms_inbound, name="sms-inbound"),
    path("sms/delivery/", views.sms_delivery, name="sms-delivery"),
]
