"""How a merged model was made, read back from the store, for reports and `mergeval merge` output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mergeval.errors import UserError
from mergeval.merge.recipe import is_seeded
from mergeval.store import Store


@dataclass
class MergeProvenance:
    fingerprint: str
    method: str
    parameters: dict[str, Any]
    seed: int | None
    mergekit_version: str | None
    parents: list[tuple[str, str, str]]  # (fingerprint, name, reference) in the config's order
    config: dict[str, Any] = field(default_factory=dict)
    output_path: str | None = None

    def summary(self) -> str:
        """One line: `ties merge of parent-a + parent-b (base: base) with density=0.5, weight=1.0; seed 0;
        mergekit 0.1.5`."""
        base_ref = self.config.get("base_model")
        base_name = next((name for _, name, reference in self.parents if reference == base_ref), None)
        in_models = {entry.get("model") for entry in self.config.get("models") or []}
        models = [
            name for _, name, reference in self.parents if reference in in_models or reference != base_ref
        ]
        text = f"{self.method} merge of {' + '.join(models)}"
        if base_name and base_name not in models:
            text += f" (base: {base_name})"
        if self.parameters:
            text += " with " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(self.parameters.items()))
        if self.seed is not None and _seeded(self.method):
            text += f"; seed {self.seed}"
        if self.mergekit_version:
            text += f"; mergekit {self.mergekit_version}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "method": self.method,
            "parameters": self.parameters,
            "seed": self.seed,
            "mergekit_version": self.mergekit_version,
            "parents": [
                {"fingerprint": fp, "name": name, "reference": reference}
                for fp, name, reference in self.parents
            ],
            "config": self.config,
            "output_path": self.output_path,
            "summary": self.summary(),
        }


def _seeded(method: str) -> bool:
    """Whether the seed matters for this method (shown anyway when mergekit no longer knows the method)."""
    try:
        return is_seeded(method)
    except UserError:
        return True


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def merge_provenance(store: Store, fingerprint: str) -> MergeProvenance | None:
    """The recorded provenance of a merged model, or None when the store has no merge for it."""
    row = store.merge(fingerprint)
    if row is None:
        return None
    parents = []
    for fp in row["parents"]:
        model = store.model(fp)
        parents.append((fp, model.name if model else fp[:12], model.reference if model else ""))
    return MergeProvenance(
        fingerprint=fingerprint,
        method=row["method"],
        parameters=row["parameters"],
        seed=row["seed"],
        mergekit_version=row["mergekit_version"],
        parents=parents,
        config=row["config"],
        output_path=row["output_path"],
    )
