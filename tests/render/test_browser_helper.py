"""The browser helper (browser.py) itself: each check finds the fault it exists for, and stays quiet on a good page."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

from browser import LAPTOP, MISSING, open_view

REPO = Path(__file__).resolve().parents[2]

FITS = "<!doctype html><html><body><p>Short and sweet.</p></body></html>"


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def test_a_page_that_fits_has_no_problems(browser):
    with open_view(browser, FITS) as view:
        assert view.evaluate("[innerWidth, innerHeight]") == list(LAPTOP)
        assert view.overflow() == 0
        assert view.clipped() == []
        assert view.problems.all() == []


def test_horizontal_overflow_is_measured(browser):
    html = "<!doctype html><body style='margin:0'><div style='width:2000px'>wide</div></body>"
    with open_view(browser, html) as view:
        assert view.overflow() == 2000 - LAPTOP[0]
        view.set_viewport(2100, 600)
        assert view.overflow() == 0


def test_console_errors_page_errors_and_requests_are_caught(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><body><img src='https://example.com/pixel.png'>"
        "<script>console.error('boom'); console.log('fine'); missingFunction();</script></body>"
    )
    with open_view(browser, page) as view:
        problems = view.problems
        # the failed load is logged as a console error too, as DevTools shows it
        assert sorted(problems.console_errors) == [
            "Failed to load resource: net::ERR_INTERNET_DISCONNECTED",
            "boom",
        ]
        assert len(problems.exceptions) == 1 and "missingFunction" in problems.exceptions[0]
        assert problems.requested_urls[0] == page.resolve().as_uri()
        assert problems.off_machine_requests() == ["https://example.com/pixel.png"]
        # the context is offline: the request fails instead of leaving the machine
        assert len(problems.failed_requests) == 1 and "example.com" in problems.failed_requests[0]
        assert len(problems.all()) == 5


def test_layout_gives_css_pixel_boxes(browser):
    html = (
        "<!doctype html><body style='margin:0'>"
        "<div class='box' style='position:absolute; left:100px; top:50px; width:200px; height:30px'></div>"
        "<div class='box' style='position:absolute; left:1300px; top:0; width:100px; height:10px'></div></body>"
    )
    with open_view(browser, html) as view:
        first, second = view.layout(".box")
        assert first == {"x": 100, "y": 50, "width": 200, "height": 30, "right": 300, "bottom": 80}
        assert second["right"] == 1400 > LAPTOP[0]  # half off a laptop screen
        assert view.layout(".nothing") == []


def test_clipped_finds_text_a_person_cannot_read_whole(browser):
    html = """<!doctype html><body style="margin:0">
      <span id="label" style="display:inline-block; width:60px; overflow:hidden; white-space:nowrap;
            text-overflow:ellipsis">winogrande (5-shot)</span>
      <span id="fits" style="display:inline-block; width:300px; overflow:hidden">ARC</span>
      <div style="width:200px; overflow-x:auto"><table><tr><td style="white-space:nowrap">
        a cell far wider than its scrolling card, so its end is hidden</td></tr></table></div>
      <svg width="120" height="40"><text x="60" y="20">...nogrande radar label</text></svg>
      <div style="width:1500px; text-align:right"><span>Average 61.2</span></div>
      <p style="display:none; width:10px; overflow:hidden">hidden, so not a problem</p>
    </body>"""
    with open_view(browser, html) as view:
        clipped = {entry["text"][:10]: entry["why"] for entry in view.clipped()}
    assert clipped == {
        "winogrande": "overflows its box",
        "a cell far": "cut by <div>",
        "...nogrand": "cut by <svg>",
        "Average 61": "outside the viewport",
    }, clipped


def test_screenshot_is_a_png_of_the_viewport_or_the_whole_page(browser, tmp_path):
    html = "<!doctype html><body style='margin:0'><div style='height:3000px; background:#06c'></div></body>"
    with open_view(browser, html, width=1000, height=700) as view:
        shown = view.screenshot(tmp_path / "viewport.png")
        whole = view.screenshot(tmp_path / "page.png", full_page=True)
    assert _png_size(shown) == (1000, 700)
    assert _png_size(whole) == (1000, 3000)


def test_missing_chromium_fails_with_how_to_install_it(tmp_path):
    """No Chromium on PATH: the fixture fails (not skips) with the one-sentence fix."""
    env = {**os.environ, "PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "layout_gives", __file__],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert MISSING in result.stdout and "make browser" in MISSING
    assert "1 error" in result.stdout and "skipped" not in result.stdout
