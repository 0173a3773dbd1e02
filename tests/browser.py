"""Look at an HTML page the way a person does: Playwright driving Debian's Chromium, offline, at laptop size.

``open_view(browser, html)`` loads a file (a ``Path``) or an HTML string into a fresh offline browser context
and records what a broken page produces but nobody sees: uncaught exceptions, console errors (CSP
violations included), failed requests and any request that leaves the machine. ``View.layout(selector)``
gives bounding boxes, ``View.clipped()`` the text a person cannot read whole, ``View.overflow()`` how far
the page scrolls sideways. No browser is ever downloaded: ``make browser`` installs Debian's ``chromium``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

LAPTOP = (1366, 768)
TIMEOUT_MS = 30_000
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MISSING = (
    "No Chromium found for the HTML report's browser tests: run `make browser` (installs Debian's chromium)."
)


def chromium_binary() -> str | None:
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


@contextmanager
def launch() -> Iterator[Browser]:
    """Start Playwright and Chromium (no sandbox: Playwright's default, needed as root in a container).

    Scroll bars are hidden (Playwright's headless default, like overlay scroll bars): the layout width is the
    full viewport. ``ignore_default_args=["--hide-scrollbars"]`` would give classic 15 px ones.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_binary()
    if executable is None:
        raise FileNotFoundError(MISSING)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageProblems:
    """Everything that went wrong while the page loaded and ran."""

    exceptions: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requested_urls: list[str] = field(default_factory=list)

    def off_machine_requests(self) -> list[str]:
        return [u for u in self.requested_urls if not u.startswith(("file://", "data:", "about:"))]

    def all(self) -> list[str]:
        return [
            *self.exceptions,
            *self.console_errors,
            *self.failed_requests,
            *(f"request to {u}" for u in self.off_machine_requests()),
        ]


# Text the reader cannot see whole: cut by its own box or a clipping ancestor (an <svg> clips too), or beyond
# the viewport's right or left edge (only reachable by scrolling sideways). Unrendered elements are ignored.
_CLIPPED_JS = """(selector) => {
    const viewport = document.documentElement.clientWidth, out = [];
    const clips = e => getComputedStyle(e).overflowX !== 'visible';
    for (const e of document.querySelectorAll(selector)) {
        const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
        if (!own || !e.getClientRects().length || getComputedStyle(e).visibility === 'hidden') continue;
        const r = e.getBoundingClientRect(), text = e.textContent.trim().slice(0, 80);
        const why = [];
        if (!(e instanceof SVGElement) && clips(e) && e.scrollWidth > e.clientWidth) why.push('overflows its box');
        for (let a = e.parentElement; a && a !== document.body && a !== document.documentElement; a = a.parentElement) {
            const box = a.getBoundingClientRect();
            if (clips(a) && (r.left < box.left - 1 || r.right > box.right + 1)) {
                why.push(`cut by <${a.tagName.toLowerCase()}${a.id ? '#' + a.id : ''}>`);
                break;
            }
        }
        if (r.left < -1 || r.right > viewport + 1) why.push('outside the viewport');
        if (why.length) out.push({tag: e.tagName.toLowerCase(), text, why: why.join(', ')});
    }
    return out;
}"""


class View:
    """One page in its own offline browser context."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems = PageProblems()
        page.on("pageerror", lambda error: self.problems.exceptions.append(str(error)))
        page.on("console", self._on_console)
        page.on("request", lambda r: self.problems.requested_urls.append(r.url))
        page.on("requestfailed", lambda r: self.problems.failed_requests.append(f"{r.failure} ({r.url})"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self.problems.console_errors.append(message.text)

    def load(self, html: Path | str) -> None:
        """A ``Path`` is opened as ``file://``; a ``str`` is the page's HTML."""
        if isinstance(html, Path):
            self.page.goto(html.resolve().as_uri())
        else:
            self.page.set_content(html)

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def set_viewport(self, width: int, height: int) -> None:
        self.page.set_viewport_size({"width": width, "height": height})

    def layout(self, selector: str) -> list[dict[str, float]]:
        """The bounding box (CSS px, relative to the viewport) of every element ``selector`` matches."""
        return self.page.eval_on_selector_all(
            selector,
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: r.width, height: r.height, right: r.right, bottom: r.bottom}; })",
        )

    def overflow(self) -> int:
        """How many CSS px the page scrolls sideways (0 when it fits the viewport's width)."""
        return self.evaluate("document.scrollingElement.scrollWidth - document.documentElement.clientWidth")

    def clipped(self, selector: str = "body *") -> list[dict[str, str]]:
        """Elements (of ``selector``) whose own text is cut or lies beyond the viewport horizontally."""
        return self.evaluate(_CLIPPED_JS, selector)

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        """A PNG of the viewport (what a person sees without scrolling), or of the whole page."""
        self.page.screenshot(path=path, full_page=full_page)
        return path


@contextmanager
def offline_context(browser: Browser, width: int, height: int) -> Iterator[BrowserContext]:
    """A fresh browser context at ``width`` x ``height`` CSS px (scale 1, light scheme) with no network."""
    context = browser.new_context(
        viewport={"width": width, "height": height},
        device_scale_factor=1,
        offline=True,
        color_scheme="light",
        service_workers="block",
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@contextmanager
def open_view(
    browser: Browser, html: Path | str, *, width: int = LAPTOP[0], height: int = LAPTOP[1]
) -> Iterator[View]:
    """Load ``html`` (a file, or the page's HTML as a string) at ``width`` x ``height``, a laptop by default."""
    with offline_context(browser, width, height) as context:
        view = View(context.new_page())
        view.load(html)
        yield view
