"""The admin site's name. The admin itself lives with the models it edits (``core/admin.py``)."""

from django.contrib import admin

admin.site.site_header = "HAVEN GRAZURI Advance"
admin.site.site_title = "HAVEN GRAZURI Advance"
admin.site.index_title = "Back office"
