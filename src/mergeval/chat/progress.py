"""Progress reporting hooks, so the CLI can draw progress bars while the library stays UI-free."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """What the chat functions call while they work: start(label, total), advance(n) per item, done()."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def done(self) -> None: ...


class NullProgress:
    """The default: report nothing."""

    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def done(self) -> None:
        pass
