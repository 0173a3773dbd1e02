"""Check types are a registry: a package adds one without touching plan.py, and gates can use its numbers."""

from typing import Literal

import pytest
from compare_helpers import correct_on, store_task

from mergeval.analysis import compare_plan
from mergeval.core import Batch, Check, MetricSpec, Task, check, check_types
from mergeval.core.results import CheckData
from mergeval.models import resolve
from mergeval.plan import CheckConfig, PlanError, parse_plan
from mergeval.store import ItemRow, Store
from mergeval.testing import make_tiny_llama


class StoredRate(CheckConfig):
    """A check whose evaluation of a model is the `rate` its plan entry gives it (one item per model)."""

    type: Literal["stored-rate"] = "stored-rate"
    rates: dict[str, float]


@check("stored-rate")
class StoredRateCheck(Check[StoredRate]):
    Config = StoredRate
    known_metrics = ("win_rate",)

    def metrics(self, config, plan):
        return [MetricSpec("win_rate", "Win rate", kind="fact", scale=1.0, range=(0.0, 1.0), unit="")]

    def tasks(self, config, ctx, model, stage):
        if model.name not in config.rates:
            return []
        return [Task("test.rate", "stored-rate", {"rate": config.rates[model.name]}, ("rate",))]

    def evaluate(self, engine, task, item_ids):
        yield Batch([ItemRow("rate", {"rate": task.config["rate"]})])

    def collect(self, config, ctx) -> CheckData:
        data = CheckData(check=config.label, type=config.type, fact_specs=self.metrics(config, ctx.plan))
        for m in ctx.models:
            for task in self.tasks(config, ctx, m, "evaluate"):
                stored = ctx.store.items(m.fingerprint, task.hash)
                if stored:
                    data.facts[m.name] = {"win_rate": stored[0].metrics["rate"]}
        return data


def test_a_registered_check_type_validates_runs_and_feeds_gates(tmp_path):
    from mergeval.analysis import run_plan

    assert "stored-rate" in check_types()
    for name, seed in (("merged", 0), ("parent", 1)):
        make_tiny_llama(tmp_path / name, seed=seed)
    plan_file = tmp_path / "mergeval.yaml"
    plan_file.write_text("""\
models:
  - candidate: ./merged
  - parent: ./parent
checks:
  - type: stored-rate
    rates: {merged: 0.52}
gates:
  - win_rate >= 45%
  - win_rate >= parent
""")
    report = run_plan(plan_file)
    gates = {g["name"]: g for g in report["gates"]}
    assert gates["win_rate >= 45%"]["status"] == "pass"
    assert gates["win_rate >= 45%"]["value"] == pytest.approx(0.52)
    assert gates["win_rate >= 45%"]["threshold"] == pytest.approx(0.45)
    assert gates["win_rate >= parent"]["status"] == "not evaluated"  # the parent has no rate
    assert report["facts"] == {"merged": {"win_rate": 0.52}}

    with pytest.raises(
        PlanError, match=r"mergeval.yaml:5: unknown key 'rate' in checks\[0\] \(did you mean 'rates'\?\)"
    ):
        parse_plan(
            "models:\n  - candidate: org/m\nchecks:\n  - type: stored-rate\n    rate: {}\n",
            source="mergeval.yaml",
        )


def test_benchmark_names_repeated_by_a_second_suite_check_are_prefixed(tmp_path, mini_suite):
    fp = resolve(make_tiny_llama(tmp_path / "merged", seed=0)).fingerprint
    with Store(tmp_path / "mergeval-results" / "mergeval.db") as store:
        store.upsert_model(fp, name="merged", reference=str(tmp_path / "merged"), kind="local")
        store_task(store, fp, "smoke_arc", correct_on(3, 6), metric="acc_norm", dtype="auto")
    plan_file = tmp_path / "mergeval.yaml"
    plan_file.write_text(f"""\
models:
  - candidate: ./merged
checks:
  - {{type: suite, suite: {mini_suite}, tasks: [arc], limit: 6}}
  - {{type: suite, suite: {mini_suite}, tasks: [arc], limit: 6, name: again}}
""")
    report = compare_plan(plan_file)
    assert [b["name"] for b in report["benchmarks"]] == ["arc", "again.arc"]
    assert report["scores"]["merged"]["arc"]["value"] == pytest.approx(50.0)
    assert report["scores"]["merged"]["again.arc"]["value"] == pytest.approx(50.0)
    assert report["provenance"]["average_of"] == ["arc"]  # only the first (primary) suite makes the Average
