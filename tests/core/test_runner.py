"""The one runner: only missing items are evaluated, batches are stored as they finish, interruptions resume,
a model that cannot run the check leaves the store untouched."""

import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest

from mergeval.core import CheckContext, Entry, PlanModel, WorkUnit, load_plugin_file, plan_units, run_entries
from mergeval.core.registry import get_check
from mergeval.errors import UserError
from mergeval.models import ModelRef
from mergeval.store import Store

load_plugin_file(Path(__file__).with_name("toy_check.py"))
TOY = get_check("toy-upper")
TEXTS = ["alpha", "beta", "gamma", "delta", "epsilon"]


def _model(name: str) -> PlanModel:
    ref = ModelRef(reference=name, kind="endpoint", name=name, fingerprint=f"fp-{name}")
    return PlanModel(SimpleNamespace(name=name, role="candidate"), ref)


def _ctx(store: Store, *names: str) -> CheckContext:
    return CheckContext(plan=None, store=store, models=[_model(n) for n in names or ("m1",)])


def _loads() -> list[str]:
    import sys

    return next(m for k, m in sys.modules.items() if k.startswith("mergeval_plugin_toy_check")).LOADS


def test_only_missing_items_are_evaluated_and_a_complete_check_loads_nothing(tmp_path):
    with Store(tmp_path / "s.db") as store:
        ctx = _ctx(store, "m1", "m2")
        entry = Entry(TOY, TOY.Config(texts=TEXTS))
        before = len(_loads())
        assert run_entries([entry], ctx).evaluated == 10
        assert len(_loads()) == before + 2  # one engine per model
        assert run_entries([entry], ctx).evaluated == 0
        assert len(_loads()) == before + 2  # nothing missing: nothing loaded
        task = TOY.tasks(entry.config, ctx, ctx.models[0], "evaluate")[0]
        items = {it.item_id: it for it in store.items("fp-m1", task.hash, with_data=True)}
        assert items["2"].metrics == {"length": 5} and items["2"].data == {"upper": "GAMMA"}
        assert store.cache_get("toy", "4") == "epsilon"  # cache entries ride with their batch
        assert [r.status for r in store.runs("fp-m1")] == ["done"]


def test_an_interrupted_run_is_marked_and_the_rerun_computes_only_the_rest(tmp_path):
    with Store(tmp_path / "s.db") as store:
        ctx = _ctx(store)
        with pytest.raises(KeyboardInterrupt):
            run_entries([Entry(TOY, TOY.Config(texts=TEXTS, interrupt_after=2))], ctx)
        task = TOY.tasks(TOY.Config(texts=TEXTS), ctx, ctx.models[0], "evaluate")[0]
        assert store.item_ids("fp-m1", task.hash) == {"0", "1"}
        assert [r.status for r in store.runs("fp-m1")] == ["interrupted"]
        assert run_entries([Entry(TOY, TOY.Config(texts=TEXTS))], ctx).evaluated == 3
        assert store.item_ids("fp-m1", task.hash) == {"0", "1", "2", "3", "4"}


def test_a_model_that_cannot_run_the_check_leaves_the_store_untouched(tmp_path):
    path = tmp_path / "s.db"
    with Store(path) as store:
        store.upsert_model("fp-other", name="other", reference="other", kind="local")
    before = path.read_bytes()
    with Store(path) as store, pytest.raises(UserError, match="cannot run the toy check"):
        run_entries([Entry(TOY, TOY.Config(texts=TEXTS, fail_load=True))], _ctx(store))
    assert path.read_bytes() == before
    with Store(path) as store:
        assert [m.name for m in store.models()] == ["other"] and store.checks() == [] and store.runs() == []


def test_work_units_are_plain_data(tmp_path):
    with Store(tmp_path / "s.db") as store:
        units = plan_units([Entry(TOY, TOY.Config(texts=TEXTS))], _ctx(store), 0)
        assert len(units) == 1 and units[0].item_ids == tuple(str(i) for i in range(5))
        again = pickle.loads(pickle.dumps(units[0]))
        assert again.task.hash == units[0].task.hash and again.engine_key == units[0].engine_key
        assert [u.item_ids for u in units[0].shards(2)] == [("0", "1"), ("2", "3"), ("4",)]
        assert isinstance(units[0], WorkUnit)
