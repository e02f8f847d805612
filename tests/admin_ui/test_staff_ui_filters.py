import pytest

from admin_ui.templatetags.staff_ui import duration_ms

# This folder's conftest clears the cache table around every test.
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("milliseconds", "shown"),
    [(None, "—"), (2.873, "2.9 ms"), (0.4, "0.4 ms"), (9.96, "10 ms"), (150.0, "150 ms"), (2450, "2.5 s")],
)
def test_a_processing_time_is_shown_to_a_tenth_of_a_millisecond_below_ten(milliseconds, shown):
    assert duration_ms(milliseconds) == shown
