"""The project's URLs plus ``bench/bare/`` (``bench.bare.bare_insert``), served only under bench settings."""

from django.urls import path

from bench.bare import bare_insert
from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [*project_urlpatterns, path("bench/bare/", bare_insert, name="bench-bare")]
