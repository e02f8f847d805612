"""What the payments admin pages share: the admins-only mixin and safe rendering of JSON.

The action page (``form_page``), ``money`` and ``ReadOnlyAdminMixin`` are core's (``core.admin``).
"""

import json
from typing import Any

from django.http import HttpRequest
from django.utils.html import format_html

from core.admin.mixins import ModelAdminMixinBase


def pretty_json(value: object) -> str:
    """``value`` (parsed JSON, or text that may be JSON) indented inside ``<pre>``, HTML-escaped.
    Text that is not JSON is shown as it is, escaped too."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return format_html("<pre>{}</pre>", value)
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def _is_admin(request: HttpRequest) -> bool:
    # The admin asks for permissions on its login page too, where the user is anonymous.
    return getattr(request.user, "is_admin", False)


class AdminsOnlyMixin(ModelAdminMixinBase):
    """Pages for admins only (credentials, raw payloads, every message sent): officers are refused
    even if a group gives them the model permission."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_admin(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_admin(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return _is_admin(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_admin(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_admin(request) and super().has_delete_permission(request, obj)
