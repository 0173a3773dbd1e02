"""A check type that evaluates nothing (each item costs `cost_ms`): the Ray bench measures the executor's own
cost per shard with it."""

import time
from typing import Literal

from mergeval.core import Batch, Check, CheckConfig, Task, check
from mergeval.store import ItemRow


class NoopConfig(CheckConfig):
    type: Literal["bench-noop"] = "bench-noop"
    items: int = 512
    cost_ms: float = 0.0
    batch_size: int = 8


@check("bench-noop")
class Noop(Check[NoopConfig]):
    Config = NoopConfig

    def tasks(self, config, ctx, model, stage):
        ids = tuple(str(i) for i in range(config.items))
        return [Task("bench-noop", "noop", {"items": config.items}, ids, batch_size=config.batch_size)]

    def load(self, config, model, stage, env):
        return config

    def evaluate(self, engine, task, item_ids):
        for start in range(0, len(item_ids), task.batch_size):
            chunk = item_ids[start:start + task.batch_size]
            time.sleep(engine.cost_ms * len(chunk) / 1000)
            yield Batch([ItemRow(i, {"x": 1.0}) for i in chunk])
