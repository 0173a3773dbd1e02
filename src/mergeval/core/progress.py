"""The one progress protocol. The runner, the engines and the merge lab report through it; the CLI draws it
with rich (`mergeval.cli.progress`), a notebook can pass its own, and the default draws nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Progress(Protocol):
    def start(self, key: str, description: str, total: int | None) -> None:
        """A unit of work begins: `total` steps (items), or None for a spinner (unknown length)."""

    def advance(self, key: str, n: int = 1) -> None:
        """`n` more steps of `key` are done."""

    def finish(self, key: str, status: str = "done") -> None:
        """`key` ended: done | failed | interrupted | skipped."""

    def say(self, message: str) -> None:
        """A one-line status message for the user."""


class NullProgress:
    """Draws nothing."""

    def start(self, key: str, description: str, total: int | None) -> None:
        pass

    def advance(self, key: str, n: int = 1) -> None:
        pass

    def finish(self, key: str, status: str = "done") -> None:
        pass

    def say(self, message: str) -> None:
        pass


class _Callbacks:
    """The protocol drawn on the older callbacks (`start(model, task, total)`, `advance(n)`, `done()`: the lm-eval
    harness's TaskProgress), with messages to `say`."""

    def __init__(self, callbacks: Any, say: Callable[[str], None] | None):
        self.callbacks, self._say = callbacks, say

    def start(self, key: str, description: str, total: int | None) -> None:
        if self.callbacks is not None:
            model, _, task = description.partition(" · ")
            self.callbacks.start(model, task or description, total or 0)

    def advance(self, key: str, n: int = 1) -> None:
        if self.callbacks is not None:
            self.callbacks.advance(n)

    def finish(self, key: str, status: str = "done") -> None:
        if self.callbacks is not None:
            self.callbacks.done()

    def say(self, message: str) -> None:
        if self._say is not None:
            self._say(message)


class _Saying:
    """A Progress whose messages go to `say` instead."""

    def __init__(self, progress: Progress, say: Callable[[str], None]):
        self._progress, self.say = progress, say

    def start(self, key: str, description: str, total: int | None) -> None:
        self._progress.start(key, description, total)

    def advance(self, key: str, n: int = 1) -> None:
        self._progress.advance(key, n)

    def finish(self, key: str, status: str = "done") -> None:
        self._progress.finish(key, status)

    def describe(self, key: str, description: str) -> None:
        describe(self._progress, key, description)


def describe(progress: Any, key: str, description: str) -> None:
    """Change the text shown for `key` (e.g. a Ray run's "2 running, 1 failed"), when `progress` can: an
    optional method beside the protocol's four, so any Progress without it still works."""
    method = getattr(progress, "describe", None)
    if callable(method):
        method(key, description)


# -- progress inside a batch ---------------------------------------------------------------------------------
# The runner advances a bar when a batch of items is stored; an engine whose batch takes a while (a chunk of
# GSM8K generations) says how far into the batch it is with `within_batch`, and a display that can show it
# (one that called `receive_within_batch` when its unit started, in this thread) moves the bar between batches.

_within = threading.local()


def receive_within_batch(receiver: Callable[[int, int, int], None] | None) -> None:
    """Route this thread's `within_batch(items, done, total)` calls to `receiver` (None: nowhere)."""
    _within.receiver = receiver


def within_batch(items: int, done: int, total: int) -> None:
    """`done` of the `total` requests of a batch of `items` items are finished (the batch itself is reported
    when it is stored). Nothing happens unless a display receives it."""
    receiver = getattr(_within, "receiver", None)
    if receiver is not None and total > 0:
        receiver(items, done, total)


def as_progress(progress: Any = None, say: Callable[[str], None] | None = None) -> Progress:
    """A Progress from what a caller passed: a Progress, the older callbacks (anything with `done()`), or
    None (nothing drawn); `say`, when given, receives the one-line messages."""
    if isinstance(progress, Progress):
        return progress if say is None else _Saying(progress, say)
    if progress is None and say is None:
        return NullProgress()
    return _Callbacks(progress, say)


__all__ = ["NullProgress", "Progress", "as_progress", "describe", "receive_within_batch", "within_batch"]
