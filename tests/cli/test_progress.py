"""Progress that never goes silent: lm-eval bars move per finished request inside a chunk, training bars per
optimiser step, merges name what they merge and count mergekit's steps."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress as RichBars

from mergeval import api
from mergeval.cli.progress import RichProgress
from mergeval.core.progress import receive_within_batch, within_batch
from mergeval.suites.demo_skills import SUITE_FILE


class Recorder:
    """A Progress that keeps every call, and receives the engine's within-batch reports as a display does."""

    def __init__(self):
        self.events: list[tuple] = []

    def start(self, key, description, total):
        self.events.append(("start", key, description, total))
        receive_within_batch(lambda items, done, total: self.events.append(("within", key, items, done, total)))

    def advance(self, key, n=1):
        self.events.append(("advance", key, n))

    def finish(self, key, status="done"):
        self.events.append(("finish", key, status))
        receive_within_batch(None)

    def say(self, message):
        self.events.append(("say", message))

    def describe(self, key, description):
        self.events.append(("describe", key, description))


def test_lm_eval_reports_every_finished_request_before_its_chunk_is_stored(tiny_model_dir, tmp_path):
    recorder = Recorder()
    api.evaluate([str(tiny_model_dir)], suite=str(SUITE_FILE), limit="6", store=tmp_path / "r.db",
                 progress=recorder, device="cpu")
    starts = [e for e in recorder.events if e[0] == "start"]
    assert starts, recorder.events
    for _, key, _, total in starts:
        mine = [e for e in recorder.events if e[1:2] == (key,)]
        first_advance = next(i for i, e in enumerate(mine) if e[0] == "advance")
        before = [e for e in mine[:first_advance] if e[0] == "within"]
        # the first chunk's requests, one report each, all before the chunk is stored
        assert len(before) >= 2, mine
        assert [e[3] for e in before] == list(range(1, len(before) + 1))
        assert before[-1][3] == before[-1][4]  # the chunk's last request completes it
        assert sum(e[2] for e in mine if e[0] == "advance") == total


def test_rich_bar_moves_inside_a_batch_and_never_back():
    bars = RichBars(console=Console(file=io.StringIO()))
    progress = RichProgress(bars)
    progress.start("k", "model · task", 8)
    seen = []
    for done in range(1, 5):
        within_batch(4, done, 4)  # a batch of 4 items, 4 requests
        seen.append(bars.tasks[0].completed)
    progress.advance("k", 4)
    seen.append(bars.tasks[0].completed)
    within_batch(4, 2, 8)  # half of the second batch's requests
    seen.append(bars.tasks[0].completed)
    progress.advance("k", 4)
    seen.append(bars.tasks[0].completed)
    progress.finish("k")
    assert seen == [1, 2, 3, 4, 4, 5, 8]
    within_batch(4, 1, 4)  # after the last unit finished: nobody receives it
    assert bars.tasks[0].completed == 8


def test_a_bar_of_unknown_length_ends_as_finished():
    bars = RichBars(console=Console(file=io.StringIO()))
    progress = RichProgress(bars)
    progress.start("merge", "merging ties: a + b (base: base)", None)
    progress.describe("merge", "merging ties: a + b (base: base): step 3/10")
    assert bars.tasks[0].description.endswith("step 3/10") and not bars.tasks[0].finished
    progress.finish("merge")
    assert bars.tasks[0].finished


def test_training_advances_per_optimiser_step(tmp_path):
    from mergeval.suites.demo_skills.training import TrainingRecipe, demo_models

    recorder = Recorder()
    recipe = TrainingRecipe(base_steps=12, arithmetic_steps=7, capitals_steps=5, batch_size=4)
    demo_models(recipe, cache_root=tmp_path, progress=recorder)
    totals = {e[1]: e[3] for e in recorder.events if e[0] == "start" and e[3] is not None}
    assert totals == {"demo-training-base": 12, "demo-training-arithmetic": 7, "demo-training-capitals": 5}
    for key, total in totals.items():
        steps = [e for e in recorder.events if e[0] == "advance" and e[1] == key]
        assert len(steps) == total and all(e[2] == 1 for e in steps)
        assert any(e[0] == "describe" and e[1] == key and "loss" in e[2] for e in recorder.events)
        assert ("finish", key, "done") in recorder.events


def test_merge_names_method_and_parents_and_counts_mergekit_steps(tiny_models, tmp_path):
    from mergeval.merge import merge

    config = {"merge_method": "linear", "dtype": "float32",
              "models": [{"model": str(tiny_models / "parent-a"), "parameters": {"weight": 0.5}},
                         {"model": str(tiny_models / "parent-b"), "parameters": {"weight": 0.5}}]}
    recorder = Recorder()
    merge(config, tmp_path / "out", store=None, progress=recorder)
    (start,) = [e for e in recorder.events if e[0] == "start"]
    assert start[2] == "merging linear: parent-a + parent-b" and start[3] is None
    steps = [e[2] for e in recorder.events if e[0] == "describe" and "step" in e[2]]
    done, total = steps[-1].rsplit("step ", 1)[1].split("/")
    assert len(steps) > 3 and done == total  # one report per mergekit step, up to the last
    assert ("finish", start[1], "done") in recorder.events
    assert (tmp_path / "out" / "config.json").exists()


def test_sanity_reports_every_probe_before_its_batch_is_stored(tiny_models, tmp_path):
    from mergeval.checks.sanity import run_sanity_checks
    from mergeval.models import resolve
    from mergeval.store import Store

    recorder = Recorder()
    merged = resolve(tiny_models / "merged", dtype="float32")
    parent = resolve(tiny_models / "parent-a", dtype="float32")
    with Store(tmp_path / "s.db") as store:
        run_sanity_checks(store, merged, [parent], progress=recorder)
    (start,) = [e for e in recorder.events if e[0] == "start"]
    mine = [e for e in recorder.events if e[1:2] == (start[1],)]
    probes = [e for e in mine if e[0] == "within"]
    assert [e[3] for e in probes] == list(range(1, 8)) and {e[4] for e in probes} == {7}
    assert mine.index(probes[-1]) < mine.index(next(e for e in mine if e[0] == "advance"))


def test_the_preparing_spinner_goes_when_the_first_bar_comes():
    bars = RichBars(console=Console(file=io.StringIO()))
    progress = RichProgress(bars)
    progress.preparing("reading the plan")
    assert [t.description for t in bars.tasks] == ["reading the plan"] and bars.tasks[0].total is None
    progress.start("k", "model · task", 3)
    assert [t.description for t in bars.tasks] == ["model · task"]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_plain_log_without_a_terminal_says_start_progress_and_end():
    """No terminal: plain lines (no redraws, no escape codes): start, a line per interval while items move,
    the end with its count and time."""
    from mergeval.cli.progress import PlainLog

    out = io.StringIO()
    clock = FakeClock()
    log = PlainLog(Console(file=out, width=200), interval=10, clock=clock)
    try:
        log.start("k", "merged · arc_challenge", 40)
        clock.now += 3
        log.update("k", done=4)  # within the interval: no line
        clock.now += 9
        log.update("k", done=12)  # 12 s after the last line: a line with the count and an ETA
        clock.now += 20
        log.update("k", done=40)
        log.finish("k")
    finally:
        log.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "merged · arc_challenge: started, 0/40",
        "merged · arc_challenge: 12/40 (30%), 12 s, eta 28 s",
        "merged · arc_challenge: 40/40 (100%), 32 s",
        "merged · arc_challenge: done, 40/40 in 32 s",
    ]
    assert "\x1b" not in out.getvalue()


def test_plain_log_heartbeat_when_nothing_moves():
    """A long step that reports nothing (a merge before mergekit's first step) still gets a line per interval."""
    import time

    from mergeval.cli.progress import PlainLog

    out = io.StringIO()
    log = PlainLog(Console(file=out, width=200), interval=0.2)
    try:
        log.start("m", "merging linear", None)
        time.sleep(1.0)
        log.finish("m")
    finally:
        log.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "merging linear: started" and lines[-1].startswith("merging linear: done, in ")
    beats = [line for line in lines[1:-1] if line.startswith("merging linear: running, ")]
    assert len(beats) >= 2, lines
    out = io.StringIO()
    log = PlainLog(Console(file=out, width=200), interval=0.2)
    try:
        log.start("p", "loading lm-eval", None, quiet=True)  # before the first bar: only if it lasts
        log.finish("p", "ready")
        assert out.getvalue() == ""
        log.start("p", "loading lm-eval", None, quiet=True)
        time.sleep(0.6)
        log.finish("p", "ready")
    finally:
        log.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("loading lm-eval: running, ") and lines[-1].startswith("loading lm-eval: ready, in ")


def test_rich_progress_off_a_terminal_writes_plain_lines():
    out = io.StringIO()
    bars = RichBars(console=Console(file=out, width=200))  # a StringIO is not a terminal
    progress = RichProgress(bars)
    progress.preparing("reading the plan")
    progress.start("a", "m · task", 3)
    progress.advance("a", 3)
    progress.finish("a")
    progress._plain.close()
    text = out.getvalue()
    assert not bars.live.is_started
    assert "reading the plan" not in text  # quick preparation: no line (a failing command prints its error alone)
    assert "m · task: started, 0/3" in text and "m · task: done, 3/3 in 0 s" in text
