"""Progress drawn with rich: one bar per (model, task), ETA included, on stderr. A bar of unknown length
(total None: a merge until mergekit says how many steps) is a spinner with its description.

`progress_display()` yields a `mergeval.core.Progress` (the runner's protocol). The display starts with the
first bar, so a command that fails before any work prints only its error, and only on a terminal. `rich_progress()` is the same
display behind the lm-eval harness's older callbacks (`TaskProgress`), for the code that still uses them.
"""

from __future__ import annotations

import itertools
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


class RichProgress:
    """The core progress protocol on a rich display: a bar per key, messages printed above the bars."""

    def __init__(self, bars: Progress):
        self._bars = bars
        self._ids: dict[str, tuple[int, str]] = {}  # key -> (rich task id, description)
        self._stored: dict[str, int] = {}  # key -> items reported done (the bar shows more inside a batch)

    def preparing(self, description: str) -> None:
        """A spinner saying what happens before the first bar (reading the plan, loading lm-eval's tasks); it
        goes when the first bar comes, or with the display."""
        self._drop_preparing()
        if not self._bars.live.is_started and self._bars.console.is_terminal:
            self._bars.start()
        self._preparing = self._bars.add_task(escape(description), total=None, spinner=True)

    def _drop_preparing(self) -> None:
        if getattr(self, "_preparing", None) is not None:
            self._bars.remove_task(self._preparing)
            self._preparing = None

    def start(self, key: str, description: str, total: int | None) -> None:
        self._drop_preparing()
        # Bars only on a terminal: redirected, a display would print its last frame among the results.
        if not self._bars.live.is_started and self._bars.console.is_terminal:
            self._bars.start()
        shown = escape(description)
        self._ids[key] = (self._bars.add_task(shown, total=total, spinner=total is None), shown)
        self._stored[key] = 0
        receive_within_batch(lambda items, done, total_requests: self._within(key, items, done, total_requests))

    def advance(self, key: str, n: int = 1) -> None:
        if key in self._ids:
            self._stored[key] += n
            self._bars.update(self._ids[key][0], completed=self._stored[key])

    def _within(self, key: str, items: int, done: int, total: int) -> None:
        """The engine is `done`/`total` requests into a batch of `items`: the bar moves by that share."""
        if key in self._ids:
            self._bars.update(self._ids[key][0], completed=self._stored[key] + items * min(done, total) / total)

    def describe(self, key: str, description: str) -> None:
        """New text for a bar (the Ray executor's per-model shard counts)."""
        if key in self._ids:
            task_id, _ = self._ids[key]
            shown = escape(description)
            self._ids[key] = (task_id, shown)
            self._bars.update(task_id, description=shown)

    def finish(self, key: str, status: str = "done") -> None:
        task_id, shown = self._ids.pop(key, (None, ""))
        self._stored.pop(key, None)
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
