"""A picture of a report's top at laptop width, for the README (docs/report-1366.png).

    python tools/screenshot_report.py mergeval-results/demo/report/report.html docs/report-1366.png
    python tools/screenshot_report.py mergeval-results/demo/report/report.html docs/report-items-1366.png \
        --items Arithmetic --candidate linear

Opens the page in headless Chromium (Debian's, through Playwright; `make browser`) at 1,366 x 768 CSS px and
saves the page from its top down to the last of: the verdict, every model's Average, and the gates that
failed (all of them; the passing ones only as far as they come before). Prints what the picture holds and
fails when any of it is cut at the right edge (the page must not scroll sideways). With --items BENCHMARK: one
screen of the per-item view instead, that benchmark opened on what --candidate lost.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

WIDTH, HEIGHT = 1366, 768
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# The boxes of what the picture must hold (page coordinates).
_BOXES = """() => {
    const box = e => { const r = e.getBoundingClientRect();
        return {left: r.left + scrollX, top: r.top + scrollY, right: r.right + scrollX, bottom: r.bottom + scrollY,
                text: e.textContent.trim().replace(/\\s+/g, ' ').slice(0, 60)}; };
    const all = s => [...document.querySelectorAll(s)].filter(e => e.getClientRects().length).map(box);
    return {verdict: all('.verdict'), averages: all('.glance-model'),
            failed: all('.gate-fail'), scroll: document.scrollingElement.scrollWidth - innerWidth};
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--margin", type=int, default=16, help="CSS px kept below the last thing shown")
    parser.add_argument("--items", metavar="BENCHMARK", help="picture the per-item view of this benchmark")
    parser.add_argument("--candidate", help="--items: the candidate whose lost items are shown")
    args = parser.parse_args()
    if not args.report.is_file():
        print(f"No report at {args.report}: run `mergeval demo` (or `mergeval run PLAN`) first.", file=sys.stderr)
        return 2
    executable = next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    if executable is None:
        print("No Chromium: run `make browser`.", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1)
            page.goto(args.report.resolve().as_uri())
            if args.items:
                return _items_picture(page, args)
            found = page.evaluate(_BOXES)
            wanted = found["verdict"] + found["averages"] + found["failed"]
            if not found["verdict"] or not found["averages"]:
                print(f"The page has no verdict or no Averages to show: {found}", file=sys.stderr)
                return 1
            cut = [b["text"] for b in wanted if b["right"] > WIDTH + 1 or b["left"] < -1]
            if cut or found["scroll"] > 0:
                print(f"Cut at {WIDTH} px (page scrolls {found['scroll']} px sideways): {cut}", file=sys.stderr)
                return 1
            bottom = max(b["bottom"] for b in wanted) + args.margin
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True,
                            clip={"x": 0, "y": 0, "width": WIDTH, "height": max(HEIGHT, bottom)})
        finally:
            browser.close()
    print(f"{args.out}: {WIDTH} x {max(HEIGHT, round(bottom))} px; verdict, {len(found['averages'])} Averages, "
          f"{len(found['failed'])} failed gates")
    return 0


def _items_picture(page, args) -> int:
    summary = page.locator("#per-item details summary", has_text=args.items).first
    if not summary.count():
        print(f"The page has no per-item view of {args.items!r}.", file=sys.stderr)
        return 1
    summary.click()
    controls = page.locator("#per-item .mv-controls select")
    if args.candidate:
        controls.nth(0).select_option(args.candidate)
    controls.nth(1).select_option("lost")
    page.evaluate("document.querySelector('#per-item').scrollIntoView()")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(args.out))
    shown = page.locator("#per-item .mv-summary").first.text_content()
    print(f"{args.out}: {WIDTH} x {HEIGHT} px; {args.items}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
