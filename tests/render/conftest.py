"""The real browser for the HTML report's tests (see browser.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser import MISSING, chromium_binary, launch


# One Chromium per test module, not per session: while Playwright's sync API is running, its event loop counts
# as running in the main thread, so `asyncio.run()` in any later test (of any folder) would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator:
    if chromium_binary() is None:
        pytest.fail(MISSING, pytrace=False)
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail(
            "playwright is not installed: run `make install` (it is in the dev extra).", pytrace=False
        )
    with launch() as running:
        yield running
