"""The library entry points a notebook user calls: mergeval.evaluate (check entries or a suite), run, compare."""

import math
import subprocess
import sys

import pytest

import mergeval


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    from mergeval.testing import make_tiny_llama

    root = tmp_path_factory.mktemp("api")
    return make_tiny_llama(root / "merged", seed=1), make_tiny_llama(root / "parent", seed=2)


def test_import_mergeval_is_light_and_names_load_on_use():
    code = ("import mergeval, sys; print('torch' in sys.modules, 'scipy' in sys.modules); "
            "mergeval.evaluate; mergeval.Check; print('scipy' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["False", "False"]
    assert out[3] == "False"  # naming the API loads neither torch nor a model
    with pytest.raises(AttributeError):
        mergeval.no_such_name  # noqa: B018


def test_evaluate_with_check_entries_then_run_and_compare_a_plan(two_models, tmp_path):
    from mergeval.checks.perplexity import PerplexityConfig

    merged, parent = two_models
    store = tmp_path / "s.db"
    models = [merged, {"parent": str(parent)}]
    report = mergeval.evaluate(models, checks=[{"type": "perplexity", "context_length": 64}], store=store,
                               device="cpu")
    scores = {m: report.scores[m]["perplexity"] for m in ("merged", "parent")}
    assert all(s.n == 12 and math.isfinite(s.value) for s in scores.values())
    # a Config object is the same check: everything comes from the store now
    again = mergeval.evaluate(models, checks=[PerplexityConfig(context_length=64)], store=store, device="cpu")
    assert again.scores["merged"]["perplexity"].value == scores["merged"].value
    plan = tmp_path / "mergeval.yaml"
    plan.write_text(f"models:\n  - candidate: {merged}\n  - parent: {parent}\n"
                    f"checks:\n  - {{type: perplexity, context_length: 64}}\nstore: {store}\n")
    ran = mergeval.run(plan)
    compared = mergeval.compare(plan)
    assert ran.scores["merged"]["perplexity"].value == compared.scores["merged"]["perplexity"].value \
        == scores["merged"].value
    with pytest.raises(mergeval.UserError, match="either"):
        mergeval.evaluate(models, checks=[{"type": "perplexity"}], suite="smoke", store=store)
