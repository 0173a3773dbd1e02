"""A bounded thread pool whose results come back, as each call finishes, to the thread that iterates it.

Judge and endpoint calls run on worker threads; whoever consumes the results (the runner, which writes the
store: SQLite connections belong to the thread that opened them) stays in its own thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def bounded(jobs: Iterable[Job], work: Callable[[Job], Result], *, concurrency: int) -> Iterator[tuple[Job, Result]]:
    """Run `work(job)` on at most `concurrency` threads; yield (job, result) here as each call finishes.

    The first exception raised by `work` stops the submission of new jobs; the calls already running finish
    and their results are still yielded (so nothing already paid for is lost); then the exception is raised
    again. Closing the iterator early (Ctrl-C in the consumer) submits nothing more and waits for the calls in
    flight.
    """
    pending = iter(jobs)
    width = max(1, concurrency)
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="mergeval-chat") as pool:
        running: dict[Future, Job] = {}
        for job in _take(pending, width):
            running[pool.submit(work, job)] = job
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                exc = future.exception()
                if exc is not None:
                    error = error or exc
                    continue
                yield job, future.result()
            if error is None:
                for job in _take(pending, width - len(running)):
                    running[pool.submit(work, job)] = job
    if error is not None:
        raise error


def _take(pending: Iterator[Job], n: int) -> list[Job]:
    out: list[Job] = []
    if n <= 0:
        return out
    for job in pending:
        out.append(job)
        if len(out) >= n:
            break
    return out
