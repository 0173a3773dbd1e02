"""Check types are a registry: a package adds one without touching plan.py, and gates can use its numbers."""

from typing import Literal

import pytest
from compare_helpers import correct_on, store_task

from mergeval.compare import compare_plan
from mergeval.compare.registry import CheckData, CheckType, Provides, check_types, register_check
from mergeval.models import resolve
from mergeval.plan import CheckConfig, PlanError, parse_plan
from mergeval.store import Store
from mergeval.testing import make_tiny_llama


class StoredRate(CheckConfig):
    """A check reading each model's `rate` from the store's cache (written by its run step)."""

    type: Literal["stored-rate"] = "stored-rate"
    rates: dict[str, float]


def _run(check: StoredRate, ctx) -> None:
    for m in ctx.models:
        if m.name in check.rates:
            ctx.store.cache_put("test.rate", m.fingerprint, check.rates[m.name])


def _collect(check: StoredRate, ctx) -> CheckData:
    data = CheckData(check=check.label, type=check.type)
    for m in ctx.models:
        rate = ctx.store.cache_get("test.rate", m.fingerprint)
        if rate is not None:
            data.facts[m.name] = {"win_rate": rate}
    return data


register_check(
    CheckType(
        name="stored-rate",
        config=StoredRate,
        run=_run,
        collect=_collect,
        provides=lambda check, plan: Provides(facts=["win_rate"]),
        metrics=("win_rate",),
    )
)


def test_a_registered_check_type_validates_runs_and_feeds_gates(tmp_path):
    from mergeval.compare import run_plan

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
