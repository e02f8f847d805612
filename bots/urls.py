"""URLs of the staff bot: the Telegram webhook."""

from django.urls import path

from bots import views

app_name = "bots"
urlpatterns = [path("telegram/", views.telegram_webhook, name="telegram-webhook")]
