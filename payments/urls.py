"""URLs of the payments app (its endpoints arrive with its issue)."""

app_name = "payments"
urlpatterns: list = []
