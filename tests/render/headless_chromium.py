"""Drive a real headless Chromium over the DevTools protocol (CDP) to check an HTML page as a browser sees it.

``open_page(path)`` starts Chromium with a throw-away profile and every background service off (no network
is needed, and none may be used), loads ``file://path`` and records what a person would never see but a
broken page produces: uncaught exceptions, console errors, failed or off-machine requests, CSP violations.
The page object can evaluate JavaScript, switch to the dark colour scheme and take PNG screenshots.

Chromium writes the port it picked (``--remote-debugging-port=0``) to ``DevToolsActivePort`` in the
profile folder; we talk to the browser endpoint with websocket-client and attach to a fresh tab with a flat
session, so no HTTP request is made to the DevTools server.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

STARTUP_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0


def chromium_binary() -> str:
    """The Chromium executable; `make test` installs Debian's `chromium` package when it can (see Makefile)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "No Chromium found: install it (e.g. `sudo apt-get install chromium`; `make test` does this when run as root)."
    )


@dataclass
class PageProblems:
    """Everything that went wrong while the page loaded and ran."""

    exceptions: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requested_urls: list[str] = field(default_factory=list)

    def off_machine_requests(self) -> list[str]:
        return [u for u in self.requested_urls if not u.startswith(("file://", "data:", "about:"))]

    def all(self) -> list[str]:
        return [
            *self.exceptions,
            *self.console_errors,
            *self.log_errors,
            *self.failed_requests,
            *(f"request to {u}" for u in self.off_machine_requests()),
        ]


class Page:
    """One tab of a running Chromium, addressed through a flat CDP session."""

    def __init__(self, ws: websocket.WebSocket, session_id: str) -> None:
        self._ws = ws
        self._session = session_id
        self._next_id = 1000
        self.problems = PageProblems()

    def call(self, method: str, params: dict | None = None) -> dict:
        self._next_id += 1
        message_id = self._next_id
        self._ws.send(
            json.dumps(
                {"id": message_id, "method": method, "params": params or {}, "sessionId": self._session}
            )
        )
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < deadline:
            message = self._receive()
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"CDP {method} failed: {message['error']}")
                return message.get("result", {})
        raise TimeoutError(f"CDP {method}: no answer within {CALL_TIMEOUT_S:.0f} s")

    def wait_for(self, event: str) -> dict:
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < deadline:
            message = self._receive()
            if message.get("method") == event:
                return message.get("params", {})
        raise TimeoutError(f"CDP event {event} did not arrive within {CALL_TIMEOUT_S:.0f} s")

    def _receive(self) -> dict:
        message = json.loads(self._ws.recv())
        if message.get("sessionId") == self._session and "method" in message:
            self._record(message["method"], message.get("params", {}))
        return message

    def _record(self, method: str, params: dict) -> None:
        problems = self.problems
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            problems.exceptions.append(
                details.get("exception", {}).get("description") or details.get("text", "?")
            )
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            problems.console_errors.append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            problems.log_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}")
        elif method == "Network.requestWillBeSent":
            problems.requested_urls.append(params.get("request", {}).get("url", ""))
        elif method == "Network.loadingFailed":
            problems.failed_requests.append(f"{params.get('errorText')} ({params.get('type')})")

    # -- conveniences -----------------------------------------------------------------------------

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def set_colour_scheme(self, scheme: str) -> None:
        self.call(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
        )

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            )
        data = self.call("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def print_to_pdf(self, path: Path) -> Path:
        data = self.call("Page.printToPDF", {"printBackground": True})["data"]
        path.write_bytes(base64.b64decode(data))
        return path


@contextmanager
def open_page(html_path: Path, *, width: int = 1280, height: int = 900) -> Iterator[Page]:
    """Start Chromium, load ``html_path`` in a new tab, yield the Page; the browser is stopped afterwards."""
    profile = Path(tempfile.mkdtemp(prefix="mergeval-chromium-"))
    log_path = profile / "chromium.log"
    command = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--mute-audio",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    ws = None
    try:
        ws = websocket.create_connection(
            _browser_endpoint(profile, process, log_path), suppress_origin=True, timeout=CALL_TIMEOUT_S
        )
        target = _browser_call(ws, 1, "Target.createTarget", {"url": "about:blank"})["targetId"]
        session = _browser_call(ws, 2, "Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(ws, session)
        for domain in ("Runtime", "Log", "Network", "Page"):
            page.call(f"{domain}.enable")
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        page.navigate(html_path.resolve().as_uri())
        yield page
    finally:
        if ws is not None:
            try:
                ws.send(json.dumps({"id": 9999, "method": "Browser.close"}))
            except (OSError, websocket.WebSocketException):
                pass
            ws.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()  # only the browser this function started
            process.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


def _browser_endpoint(profile: Path, process: subprocess.Popen, log_path: Path) -> str:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"Chromium exited with code {process.returncode} on start-up:\n"
                f"{log_path.read_text(errors='replace')[-3000:]}"
            )
        if port_file.exists():
            lines = port_file.read_text().split()
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.05)
    raise TimeoutError(
        f"Chromium did not open its DevTools port within {STARTUP_TIMEOUT_S:.0f} s:\n"
        f"{log_path.read_text(errors='replace')[-3000:]}"
    )


def _browser_call(ws: websocket.WebSocket, message_id: int, method: str, params: dict) -> dict:
    ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
    deadline = time.monotonic() + CALL_TIMEOUT_S
    while time.monotonic() < deadline:
        message = json.loads(ws.recv())
        if message.get("id") == message_id:
            if "error" in message:
                raise RuntimeError(f"CDP {method} failed: {message['error']}")
            return message["result"]
    raise TimeoutError(f"CDP {method}: no answer within {CALL_TIMEOUT_S:.0f} s")
