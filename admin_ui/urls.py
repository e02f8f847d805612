"""URLs of the admin_ui app (its endpoints arrive with its issue)."""

app_name = "admin_ui"
urlpatterns: list = []
