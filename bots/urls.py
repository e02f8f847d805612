"""URLs of the bots app (its endpoints arrive with its issue)."""

app_name = "bots"
urlpatterns: list = []
