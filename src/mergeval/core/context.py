"""What a check sees: the resolved models of a plan (`PlanModel`), the driver-side context (`CheckContext`:
plan, store, models, progress) and the engine-side environment (`RunEnv`: plain settings that travel with a
work unit to another process, so an engine never needs the plan or the store)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergeval.core.progress import NullProgress, Progress

if TYPE_CHECKING:
    from mergeval.models import ModelRef
    from mergeval.store import Store


@dataclass(frozen=True)
class RunEnv:
    """Settings an engine needs, as plain data (picklable, JSON-able)."""

    base_dir: str = "."  # relative paths of the plan resolve here
    backend: str | None = None  # lm-eval backend: mergeval-hf (default) | hf
    device: str | None = None
    batch_size: int = 8
    data_dir: str | None = None  # dataset mirror
    seed: int = 0

    def resolve_path(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p


@dataclass
class PlanModel:
    """A plan model with its resolved reference (fingerprint known). `spec` is the plan's ModelSpec."""

    spec: Any
    ref: ModelRef
    from_store: bool = False  # the files are gone; identity came from the results store

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def fingerprint(self) -> str:
        return self.ref.fingerprint

    @property
    def runnable(self) -> bool:
        """Local weights that can be loaded (not an endpoint, not known from the store only)."""
        return (self.ref.path is not None or self.ref.model_object is not None) and not self.from_store


@dataclass
class CheckContext:
    """What `tasks()` and `collect()` get on the driver: the plan, the store, the resolved models."""

    plan: Any
    store: Store
    models: list[PlanModel]
    env: RunEnv = field(default_factory=RunEnv)
    progress: Progress = field(default_factory=NullProgress)

    def say(self, message: str) -> None:
        self.progress.say(message)

    def resolve_path(self, path: str | Path) -> Path:
        return self.env.resolve_path(path)

    def model(self, name: str) -> PlanModel:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def by_role(self, role: str) -> list[PlanModel]:
        return [m for m in self.models if m.role == role]

    def select(self, models: str | list[str]) -> list[PlanModel]:
        """The models a check's `models:` field names: "all", "candidates" or a list of names."""
        if models == "all":
            return list(self.models)
        if models == "candidates":
            return self.by_role("candidate")
        wanted = set(models)
        return [m for m in self.models if m.name in wanted]


Say = Callable[[str], None]

__all__ = ["CheckContext", "PlanModel", "RunEnv"]
