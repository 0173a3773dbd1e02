"""The check types a plan can name and the metric names they provide: the plan package's only door to the
check registry (`mergeval.core.registry`, filled by `@mergeval.check`)."""

from __future__ import annotations

from typing import Any

from mergeval.core import registry
from mergeval.core.check import CheckConfig


def config_classes() -> dict[str, type[CheckConfig]]:
    """Check type name -> the pydantic Config its plan entries validate with."""
    return {name: chk.Config for name, chk in registry.check_types().items()}


def provided(config: CheckConfig, plan: Any) -> tuple[list[str], list[str]]:
    """(benchmark names, fact names) a check will produce, from its config alone (nothing is loaded)."""
    specs = registry.get_check(config.type).metrics(config, plan)
    return [m.name for m in specs if m.kind == "benchmark"], [m.name for m in specs if m.kind == "fact"]


def known_metrics() -> dict[str, str]:
    """Metric names gates may use without a check providing them -> the check type that would."""
    return registry.known_metrics()


__all__ = ["config_classes", "known_metrics", "provided"]
