"""Progress drawn with rich: one bar per (model, task), ETA included, on stderr. A bar of unknown length
(total None: a merge until mergekit says how many steps) is a spinner with its description.

Without a terminal (CI logs, `| tee`) there are no bars: `PlainLog` writes plain lines instead, on stderr. A
line when a piece of work starts and when it ends, and while work runs, a line at least every
`PLAIN_INTERVAL` seconds saying what runs and how far it is (`12/40 (30%), 1 m 3 s, eta 2 m`), so a log never
goes silent for long and never fills with redraws.

`progress_display()` yields a `mergeval.core.Progress` (the runner's protocol). The display starts with the
first bar, so a command that fails before any work prints only its error, and only on a terminal. `rich_progress()` is the same
display behind the lm-eval harness's older callbacks (`TaskProgress`), for the code that still uses them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mergeval.cli.options import err_console
from mergeval.core.progress import receive_within_batch
from mergeval.engines.lmeval.harness import TaskProgress


def _bars() -> Progress:
    columns = [SpinnerColumn(finished_text=" "), TextColumn("[bold]{task.description}"), BarColumn(),
               _Count(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    # The ETA from the last minute of progress (rich's default is 30 s, jumpy when items take seconds each).
    return Progress(*columns, console=err_console, transient=False, speed_estimate_period=60)


class _Count(MofNCompleteColumn):
    """`done/total` in whole items (a bar moved inside a batch holds a fraction); nothing for a spinner."""

    def render(self, task):
        if task.total is None or task.fields.get("spinner"):
            return TextColumn("").render(task)
        return super().render(task)


PLAIN_INTERVAL = 10.0  # seconds between plain progress lines while work runs (no terminal)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} m {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} m"


class PlainLog:
    """Progress as plain lines for a log: start and end of each piece of work, and while anything runs a line
    at least every `interval` seconds (a heartbeat thread; quiet as long as other lines are written)."""

    def __init__(self, console, interval: float = PLAIN_INTERVAL, clock=time.monotonic):
        self._console = console
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._active: dict[str, dict] = {}  # key -> {"text", "total", "done", "started"}
        self._last_line = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _print(self, text: str) -> None:
        self._last_line = self._clock()
        self._console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _status(self, entry: dict) -> str:
        elapsed = self._clock() - entry["started"]
        if entry["total"] is None:
            return f"{entry['text']}: running, {_duration(elapsed)}"
        done, total = entry["done"], entry["total"]
        line = f"{entry['text']}: {int(done)}/{total} ({100 * done / total if total else 100:.0f}%), {_duration(elapsed)}"
        if 0 < done < total:
            line += f", eta {_duration(elapsed * (total - done) / done)}"
        return line

    def start(self, key: str, text: str, total: int | None, *, quiet: bool = False) -> None:
        """`quiet`: no start or end line, only the heartbeat if it lasts (what happens before the first bar:
        a command that fails there prints its error alone)."""
        with self._lock:
            self._active[key] = {"text": text, "total": total, "done": 0.0, "started": self._clock(),
                                 "quiet": quiet}
            if not quiet:
                self._print(f"{text}: started" + (f", 0/{total}" if total is not None else ""))
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="mergeval-progress", daemon=True)
                self._thread.start()

    def update(self, key: str, *, done: float | None = None, text: str | None = None) -> None:
        with self._lock:
            entry = self._active.get(key)
            if entry is None:
                return
            if done is not None:
                entry["done"] = done
            if text is not None:
                entry["text"] = text
            if self._clock() - self._last_line >= self._interval:
                self._print(self._status(entry))

    def finish(self, key: str, status: str = "done") -> None:
        with self._lock:
            entry = self._active.pop(key, None)
            if entry is None or (entry["quiet"] and not entry.get("beat")):
                return
            took = _duration(self._clock() - entry["started"])
            count = f"{int(entry['done'])}/{entry['total']} " if entry["total"] is not None else ""
            self._print(f"{entry['text']}: {status}, {count}in {took}")

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self._interval / 4)):
            with self._lock:
                if self._active and self._clock() - self._last_line >= self._interval:
                    for entry in self._active.values():
                        entry["beat"] = True
                    self._print("; ".join(self._status(e) for e in self._active.values()))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


class RichProgress:
    """The core progress protocol on a rich display: a bar per key, messages printed above the bars."""

    def __init__(self, bars: Progress):
        self._bars = bars
        self._ids: dict[str, tuple[int, str]] = {}  # key -> (rich task id, description)
        self._stored: dict[str, int] = {}  # key -> items reported done (the bar shows more inside a batch)
        self._plain = None if bars.console.is_terminal else PlainLog(bars.console)

    def preparing(self, description: str) -> None:
        """A spinner saying what happens before the first bar (reading the plan, loading lm-eval's tasks); it
        goes when the first bar comes, or with the display."""
        self._drop_preparing()
        if not self._bars.live.is_started and self._bars.console.is_terminal:
            self._bars.start()
        self._preparing = self._bars.add_task(escape(description), total=None, spinner=True)
        if self._plain:
            self._plain.start("\0preparing", description, None, quiet=True)

    def _drop_preparing(self) -> None:
        if getattr(self, "_preparing", None) is not None:
            self._bars.remove_task(self._preparing)
            self._preparing = None
            if self._plain:
                self._plain.finish("\0preparing", "ready")

    def start(self, key: str, description: str, total: int | None) -> None:
        self._drop_preparing()
        # Bars only on a terminal: redirected, a display would print its last frame among the results.
        if not self._bars.live.is_started and self._bars.console.is_terminal:
            self._bars.start()
        shown = escape(description)
        self._ids[key] = (self._bars.add_task(shown, total=total, spinner=total is None), shown)
        self._stored[key] = 0
        if self._plain:
            self._plain.start(key, description, total)
        receive_within_batch(lambda items, done, total_requests: self._within(key, items, done, total_requests))

    def advance(self, key: str, n: int = 1) -> None:
        if key in self._ids:
            self._stored[key] += n
            self._bars.update(self._ids[key][0], completed=self._stored[key])
            if self._plain:
                self._plain.update(key, done=self._stored[key])

    def _within(self, key: str, items: int, done: int, total: int) -> None:
        """The engine is `done`/`total` requests into a batch of `items`: the bar moves by that share."""
        if key in self._ids:
            completed = self._stored[key] + items * min(done, total) / total
            self._bars.update(self._ids[key][0], completed=completed)
            if self._plain:
                self._plain.update(key, done=completed)

    def describe(self, key: str, description: str) -> None:
        """New text for a bar (the Ray executor's per-model shard counts)."""
        if key in self._ids:
            task_id, _ = self._ids[key]
            shown = escape(description)
            self._ids[key] = (task_id, shown)
            self._bars.update(task_id, description=shown)
            if self._plain:
                self._plain.update(key, text=description)

    def finish(self, key: str, status: str = "done") -> None:
        task_id, shown = self._ids.pop(key, (None, ""))
        self._stored.pop(key, None)
        if self._plain:
            self._plain.finish(key, status)
        if not self._ids:
            receive_within_batch(None)
        if task_id is not None and next(t for t in self._bars.tasks if t.id == task_id).total is None:
            # a spinner: shown as finished
            self._bars.update(task_id, total=1, completed=1)
        if task_id is not None and status != "done":
            self._bars.update(task_id, description=f"{shown} [dim]({status})[/dim]")

    def say(self, message: str) -> None:
        (self._bars.console if self._bars.live.is_started else err_console).print(
            f"[dim]{escape(message)}[/dim]", soft_wrap=True
        )


@contextmanager
def progress_display(preparing: str | None = None) -> Iterator[RichProgress]:
    """The display; `preparing`: what a spinner says until the first bar starts."""
    bars = _bars()
    progress = RichProgress(bars)
    if preparing:
        progress.preparing(preparing)
    try:
        yield progress
    finally:
        progress._drop_preparing()
        if progress._plain:
            progress._plain.close()
        if bars.live.is_started:
            bars.stop()


@contextmanager
def rich_progress() -> Iterator[TaskProgress]:
    """The display behind the harness's TaskProgress callbacks (start(model, task, total), advance(n))."""
    with progress_display() as progress:
        current: dict[str, str] = {}
        bars = itertools.count()

        def start(model: str, task: str, total: int) -> None:
            current["key"] = f"bar-{next(bars)}"
            progress.start(current["key"], f"{model} · {task}", total)

        yield TaskProgress(start=start, advance=lambda n: progress.advance(current.get("key", ""), n),
                           done=lambda: None)
