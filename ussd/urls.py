"""URLs of the ussd app (its endpoints arrive with its issue)."""

app_name = "ussd"
urlpatterns: list = []
