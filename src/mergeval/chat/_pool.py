"""A bounded thread pool whose results are handled in the calling thread.

Judge and endpoint calls run on worker threads, while everything that touches the store (SQLite
connections belong to the thread that opened them) runs in the caller's thread, as each call finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def run_bounded(
    jobs: Iterable[Job],
    work: Callable[[Job], Result],
    on_result: Callable[[Job, Result], None],
    *,
    concurrency: int,
) -> None:
    """Run `work(job)` on at most `concurrency` threads and call `on_result(job, result)` here as each finishes.

    The first exception raised by `work` stops the submission of new jobs; the jobs already running finish
    and their results still reach `on_result` (so nothing already paid for is lost); then the exception is
    raised again.
    """
    pending = iter(jobs)
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="mergeval-chat") as pool:
        running: dict[Future, Job] = {}

        def fill() -> None:
            while len(running) < max(1, concurrency):
                job = next(pending, _END)
                if job is _END:
                    return
                running[pool.submit(work, job)] = job

        fill()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                exc = future.exception()
                if exc is not None:
                    error = error or exc
                    continue
                on_result(job, future.result())
            if error is None:
                fill()
    if error is not None:
        raise error


_END = object()
