"""The plan file (`mergeval.yaml`): models and their roles, checks, gates, settings, sign-off.

    schema.py       the plan's pydantic models; checks as the registered Configs' discriminated union;
                    parse_plan / load_plan with cross-checks (gates name what the checks provide)
    gates.py        the gates: schema, the one-line shorthand, and their evaluation (+ the verdict)
    yaml_errors.py  YAML line numbers, the alias-bomb guard, pydantic errors as `file:line: fix` messages
    example.yaml    the commented example plan `mergeval init` writes

Reference: docs/plan-file.md.
"""

from mergeval.core.check import CheckConfig
from mergeval.plan._registry import config_classes as check_configs
from mergeval.plan._registry import known_metrics
from mergeval.plan.gates import (
    DERIVED_METRICS,
    GATE_OPERATORS,
    GATE_REFERENCES,
    GATE_TYPES,
    Gate,
    GateBase,
    GateData,
    NoRegressionGate,
    RetentionGate,
    SanityGate,
    ScoreGate,
    SignOffGate,
    apply_reference_arithmetic,
    evaluate_gates,
    gate_from_shorthand,
    parse_number,
    split_reference,
    verdict,
)
from mergeval.plan.schema import (
    DEFAULT_OUTPUT,
    DEFAULT_STORE,
    EXAMPLE_PLAN,
    ROLES,
    ModelSpec,
    Plan,
    Settings,
    SignOff,
    Vocabulary,
    check_entry,
    check_model_paths,
    check_union,
    load_plan,
    looks_like_local_path,
    parse_plan,
    plan_vocabulary,
    write_example,
)
from mergeval.plan.yaml_errors import MAX_PLAN_NODES, PLAN_FILE, Location, PlanError, format_loc

__all__ = [
    "DEFAULT_OUTPUT",
    "DEFAULT_STORE",
    "DERIVED_METRICS",
    "EXAMPLE_PLAN",
    "GATE_OPERATORS",
    "GATE_REFERENCES",
    "GATE_TYPES",
    "MAX_PLAN_NODES",
    "PLAN_FILE",
    "ROLES",
    "CheckConfig",
    "Gate",
    "GateBase",
    "GateData",
    "Location",
    "ModelSpec",
    "NoRegressionGate",
    "Plan",
    "PlanError",
    "RetentionGate",
    "SanityGate",
    "ScoreGate",
    "Settings",
    "SignOff",
    "SignOffGate",
    "Vocabulary",
    "apply_reference_arithmetic",
    "check_configs",
    "check_entry",
    "check_model_paths",
    "check_union",
    "evaluate_gates",
    "format_loc",
    "gate_from_shorthand",
    "known_metrics",
    "load_plan",
    "looks_like_local_path",
    "parse_number",
    "parse_plan",
    "plan_vocabulary",
    "split_reference",
    "verdict",
    "write_example",
]
