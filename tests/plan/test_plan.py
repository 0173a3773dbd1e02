"""The plan file: validation, messages that name the line and the fix, shorthands, `mergeval init`."""

from pathlib import Path

import pytest

from mergeval.errors import UserError
from mergeval.plan import (
    EXAMPLE_PLAN,
    NoRegressionGate,
    PlanError,
    RetentionGate,
    SanityGate,
    ScoreGate,
    SignOffGate,
    load_plan,
    parse_plan,
    plan_vocabulary,
    write_example,
)


def _error(text: str, **kwargs) -> str:
    with pytest.raises(PlanError) as exc:
        parse_plan(text, source="mergeval.yaml", **kwargs)
    return str(exc.value)


MODELS = """\
models:
  - name: merged
    path: org/merged
    role: candidate
  - name: a
    path: org/a
    role: parent
  - name: b
    path: org/b
    role: parent
"""


def test_example_plan_validates_and_reads_as_documented():
    plan = parse_plan(EXAMPLE_PLAN, check_paths=False)
    assert [(m.name, m.role) for m in plan.models] == [
        ("merged", "candidate"),
        ("model-a", "parent"),
        ("model-b", "parent"),
    ]
    assert [c.type for c in plan.checks] == ["sanity", "leaderboard"]
    assert [type(g) for g in plan.gates] == [
        ScoreGate,
        ScoreGate,
        NoRegressionGate,
        RetentionGate,
        SanityGate,
        ScoreGate,
        SignOffGate,
    ]
    first = plan.gates[0]
    assert (first.metric, first.op, first.than) == ("average", ">=", "min(parents)")
    assert plan.settings.dtype == "bfloat16"
    assert plan.sign_off is None


def test_typo_in_a_key_names_the_line_and_the_closest_key():
    text = """\
title: t
models:
  - name: merged
    path: org/merged
    role: candidate
  - path: org/a
    canditate: yes
checks: []
"""
    assert (
        _error(text, check_paths=False)
        == "mergeval.yaml:7: unknown key 'canditate' in models[1] (did you mean 'candidate'?)"
    )


def test_unknown_role_names_the_line_and_the_roles():
    text = MODELS.replace("role: parent\n  - name: b", "role: parnet\n  - name: b")
    message = _error(text, check_paths=False)
    assert message.startswith(
        "mergeval.yaml:7: models[1].role: unknown role 'parnet' (did you mean 'parent'?)"
    )
    assert "candidate, parent, base, baseline" in message


def test_missing_model_path_names_the_line_and_where_it_looked(tmp_path):
    plan_file = tmp_path / "plans" / "mergeval.yaml"
    plan_file.parent.mkdir()
    (tmp_path / "plans" / "parent-a").mkdir()  # relative paths start at the plan's folder, not the cwd
    plan_file.write_text("models:\n  - candidate: ./merged\n  - parent: ./parent-a\n")
    with pytest.raises(PlanError) as exc:
        load_plan(plan_file)
    lines = str(exc.value).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{plan_file}:2: model path ./merged does not exist")
    assert str((tmp_path / "plans" / "merged").resolve()) in lines[0]
    # without path checks (mergeval compare reads the store) the same plan loads
    assert load_plan(plan_file, check_paths=False).candidates[0].name == "merged"


def test_gate_on_an_unknown_task_names_the_line_and_suggests():
    text = (
        MODELS
        + """\
checks:
  - type: leaderboard
    tasks: [arc, gsm8k]
gates:
  - average >= min(parents)
  - gsm8 >= min(parents)
"""
    )
    message = _error(text)
    assert message.startswith(
        "mergeval.yaml:16: gate on unknown task 'gsm8' in gates[1] (did you mean 'gsm8k'?)"
    )
    assert "average, arc, gsm8k" in message


def test_no_regression_gate_on_an_unknown_task():
    text = (
        MODELS
        + "checks:\n  - type: leaderboard\ngates:\n  - type: no-regression\n    tasks: [gsm8k, mmlu, arc_c]\n"
    )
    assert "mergeval.yaml:15: gate on unknown task 'arc_c' in gates[0] (did you mean 'arc'?)" in _error(text)


def test_every_problem_is_listed_once_in_line_order():
    text = """\
models:
  - name: merged
    path: org/merged
    role: candidate
  - name: a
    path: org/a
    role: parnt
checks:
  - type: leaderbord
  - type: suite
    suite: no-such-suite
gates:
  - type: retention
    at_leest: 0.9
  - this is not a gate
"""
    lines = _error(text).splitlines()
    assert [line.split(":")[1] for line in lines] == ["7", "9", "11", "14", "15"]
    assert "unknown check type 'leaderbord' in checks[0] (did you mean 'leaderboard'?)" in lines[1]
    assert "Unknown suite 'no-such-suite'" in lines[2]
    assert "unknown key 'at_leest' in gates[0] (did you mean 'at_least'?)" in lines[3]
    assert "cannot read the gate 'this is not a gate'" in lines[4] and "average >= min(parents)" in lines[4]


def test_yaml_syntax_errors_and_duplicate_keys_name_the_line():
    assert _error("models:\n  - name: [unclosed\n").startswith("mergeval.yaml:3: YAML syntax error")
    message = _error(MODELS + "checks: []\nchecks: []\n", check_paths=False)
    assert message == "mergeval.yaml:12: duplicate key 'checks' (first on line 11); keep one"


def test_references_and_roles_gates_depend_on_must_exist():
    text = """\
models:
  - candidate: org/merged
checks:
  - type: leaderboard
gates:
  - average >= min(parents)
  - arc >= min(parnts)
  - no regressions
"""
    lines = _error(text).splitlines()
    assert lines[0].startswith("mergeval.yaml:6:") and "no model has role parent" in lines[0]
    assert (
        lines[1].startswith("mergeval.yaml:7: unknown reference 'min(parnts)'") and "min(parents)" in lines[1]
    )
    assert lines[2].startswith("mergeval.yaml:8:") and "add the parents to `models:`" in lines[2]


def test_a_plan_needs_a_candidate_and_unique_names():
    assert "no model has role candidate" in _error("models:\n  - parent: org/a\n")
    message = _error("models:\n  - candidate: org/m\n  - {name: m, path: org/x, role: parent}\n")
    assert message.startswith("mergeval.yaml:3: two models are named 'm'")


def test_short_form_models_default_names_and_sign_off_shorthand():
    plan = parse_plan(
        """\
models:
  - candidate: ./out/merged-slerp
  - parent: mistralai/Mistral-7B-v0.1@abc123
  - baseline: /models/thing.gguf
  - {base: openai:gpt-x@http://localhost:8000/v1, name: judge-base}
sign_off: Jane Doe
""",
        check_paths=False,
    )
    assert [(m.name, m.role) for m in plan.models] == [
        ("merged-slerp", "candidate"),
        ("Mistral-7B-v0.1", "parent"),
        ("thing", "baseline"),
        ("judge-base", "base"),
    ]
    assert plan.sign_off.by == "Jane Doe"
    assert _error("models:\n  - candidate: org/m\n    role: parent\n").startswith(
        "mergeval.yaml:2: models[0]: write"
    )


def test_gate_shorthands():
    plan = parse_plan(
        MODELS
        + """\
checks:
  - sanity
  - type: leaderboard
gates:
  - win_rate >= 45%
  - size_gb <= 16
  - no regressions on gsm8k, mmlu
  - retention >= 0.9
  - sanity
  - sign-off
  - {type: score, metric: mtbench, at_least: mean(parents)}
  - {type: retention, at_least: 90%, vs: best-parent, tasks: [gsm8k]}
  - {type: no-regression, rule: significant, tolerance: 0.02}
"""
    )
    win, size, noreg, ret, sanity, sign, mt, ret2, noreg2 = plan.gates
    assert (win.metric, win.op, win.than) == ("win_rate", ">=", 0.45)
    assert (size.metric, size.op, size.than) == ("size_gb", "<=", 16.0)
    assert noreg.tasks == ["gsm8k", "mmlu"] and noreg.rule == "point"
    assert ret.at_least == pytest.approx(0.9) and ret.vs == "mean-parents" and ret.tasks is None
    assert isinstance(sanity, SanityGate) and isinstance(sign, SignOffGate)
    assert (mt.op, mt.than) == (">=", "mean(parents)")
    assert ret2.at_least == pytest.approx(0.9) and ret2.vs == "best-parent"
    assert noreg2.rule == "significant" and noreg2.tolerance == 0.02
    assert plan.checks[0].type == "sanity"


def test_vocabulary_lists_benchmarks_and_facts():
    plan = parse_plan(MODELS + "checks:\n  - type: leaderboard\n    tasks: [arc, mmlu]\n  - type: sanity\n")
    vocab = plan_vocabulary(plan)
    assert list(vocab.benchmarks) == ["arc", "mmlu"]
    assert set(vocab.facts) == {"size_gb", "params_b", "tokens_per_second"}


def test_check_settings_are_validated_with_lines(tmp_path):
    text = (
        MODELS
        + """\
checks:
  - type: leaderboard
    limit: -3
  - type: lm-eval
    tasks: [my_task]
    include_path: ./nowhere
settings:
  alpha: 2
"""
    )
    lines = _error(text).splitlines()
    assert lines[0].startswith("mergeval.yaml:13: checks[0].limit:") and "positive" in lines[0]
    assert lines[1].startswith("mergeval.yaml:14: checks[1]: include_path ./nowhere does not exist")
    assert lines[2].startswith("mergeval.yaml:18: settings.alpha:")


def test_init_writes_the_example_and_refuses_to_overwrite(tmp_path):
    path = write_example(tmp_path / "mergeval.yaml")
    assert path.read_text() == EXAMPLE_PLAN
    with pytest.raises(UserError, match="already exists"):
        write_example(tmp_path)
    write_example(tmp_path, force=True)
    assert load_plan(tmp_path, check_paths=False).title == "SLERP merge of model A and model B"


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_merge_check_example_validates():
    plan = load_plan(EXAMPLES / "merge-check.yaml", check_paths=False)
    assert len(plan.candidates) == 1 and len(plan.parents) == 2 and plan.by_role("base")
    assert [c.type for c in plan.checks] == ["sanity", "leaderboard"]
    assert len(plan.gates) == 10


def test_tiny_plan_example_validates():
    # uses the bundled `smoke` suite (src/mergeval/suites/smoke.yaml)
    plan = load_plan(EXAMPLES / "tiny-plan.yaml", check_paths=False)
    assert [m.role for m in plan.models] == ["candidate", "parent", "parent"]
    assert plan.checks[1].suite == "smoke" and plan.checks[1].limit == 8


def test_init_command_writes_a_plan_that_validates(tmp_path):
    from typer.testing import CliRunner

    from mergeval.cli import app

    target = tmp_path / "mergeval.yaml"
    result = CliRunner().invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert "mergeval run" in result.output
    assert parse_plan(target.read_text(), check_paths=False).candidates[0].name == "merged"
    again = CliRunner().invoke(app, ["init", str(target)])
    assert isinstance(again.exception, UserError)  # main() prints it and exits 2
