"""A check type written to the core protocol, for the runner's tests (loaded as a plugin file)."""

from collections.abc import Iterator, Sequence
from typing import Literal

from mergeval.core import Batch, Check, CheckConfig, MetricSpec, Task, check
from mergeval.store import ItemRow

LOADS: list[str] = []  # fingerprints of the models loaded, in order


class ToyConfig(CheckConfig):
    type: Literal["toy-upper"] = "toy-upper"
    texts: list[str]
    interrupt_after: int | None = None  # raise KeyboardInterrupt once this many items were yielded
    fail_load: bool = False
    sleep_s: float = 0.0  # per batch
    crash_marker: str | None = None  # the first evaluation to create this file SIGKILLs its own process
    fail_item: str | None = None  # evaluating this item always raises
    log_file: str | None = None  # every evaluated item id is appended here (to count recomputation)


@check("toy-upper")
class ToyUpper(Check[ToyConfig]):
    Config = ToyConfig
    known_metrics = ("toy_length",)

    def metrics(self, config, plan):
        return [MetricSpec("toy_length", "Toy length", scale=1.0, range=(0, None), unit="chars")]

    def tasks(self, config, ctx, model, stage):
        ids = tuple(str(i) for i in range(len(config.texts)))
        return [Task("toy", "toy-upper", {"engine": "toy", "texts": config.texts}, ids, batch_size=2)]

    def load(self, config, model, stage, env):
        if config.fail_load:
            from mergeval.errors import UserError

            raise UserError(f"{model.name} cannot run the toy check.")
        LOADS.append(model.fingerprint)
        return {"config": config, "texts": config.texts, "interrupt_after": config.interrupt_after, "yielded": 0}

    def evaluate(self, engine, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        for start in range(0, len(item_ids), task.batch_size):
            if engine["interrupt_after"] is not None and engine["yielded"] >= engine["interrupt_after"]:
                raise KeyboardInterrupt
            chunk = item_ids[start:start + task.batch_size]
            _side_effects(engine["config"], chunk)
            engine["yielded"] += len(chunk)
            yield Batch([ItemRow(i, {"length": len(engine["texts"][int(i)])},
                                 {"upper": engine["texts"][int(i)].upper()}) for i in chunk],
                        cache=[("toy", i, engine["texts"][int(i)]) for i in chunk])


def _side_effects(config: ToyConfig, chunk) -> None:
    import os
    import signal
    import time

    if config.sleep_s:
        time.sleep(config.sleep_s)
    if config.fail_item in chunk:
        raise RuntimeError(f"item {config.fail_item} cannot be evaluated")
    if config.crash_marker and not os.path.exists(config.crash_marker):
        with open(config.crash_marker, "w") as fh:
            fh.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    if config.log_file:
        with open(config.log_file, "a") as fh:
            fh.write("".join(f"{i}\n" for i in chunk))
