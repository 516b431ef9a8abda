"""The console's tests: the browser fixtures (tests/fixtures/browser.py), and their markers.

A test using a fixture that starts Chromium or the console process is an
end-to-end one (``e2e``, ``browser``, ``slow``), as ``tests/conftest.py`` marks the
service's process fixtures.
"""

import pytest

from tests.fixtures.browser import BROWSER_FIXTURES, browser_page, chromium  # noqa: F401 - fixtures


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if set(getattr(item, "fixturenames", ())) & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)
