"""The former DevTools client's API (``open_page``) over browser.py, so its callers keep working unchanged.

New tests use the ``browser`` fixture (conftest.py) with ``browser.open_view``. ``open_page`` starts its own
Playwright and Chromium for the one page, as the old client did; do not call it from a test that also holds
the ``browser`` fixture (Playwright's sync API cannot run twice in one thread).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from browser import PageProblems, View, launch, offline_context

__all__ = ["Page", "PageProblems", "open_page"]


class Page(View):
    """A View with the old client's method names, and raw DevTools calls for what Playwright does not wrap."""

    def __init__(self, page: Any) -> None:
        super().__init__(page)
        self._cdp = page.context.new_cdp_session(page)

    def call(self, method: str, params: dict | None = None) -> dict:
        return self._cdp.send(method, params or {})

    def navigate(self, url: str) -> None:
        self.page.goto(url)

    def set_colour_scheme(self, scheme: str) -> None:
        self.page.emulate_media(color_scheme=scheme)

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        return super().screenshot(path, full_page=full_page)

    def print_to_pdf(self, path: Path) -> Path:
        self.page.pdf(path=path, print_background=True)
        return path


@contextmanager
def open_page(html_path: Path, *, width: int = 1280, height: int = 900) -> Iterator[Page]:
    """Start Chromium, load ``html_path`` at ``width`` x ``height``, yield the Page; the browser stops afterwards."""
    with launch() as browser, offline_context(browser, width, height) as context:
        page = Page(context.new_page())
        page.navigate(html_path.resolve().as_uri())
        yield page
