"""Check identities of the chat engine: what makes two stored results "the same question asked the same way".

Three check kinds (see docs/mt-bench.md for the full scheme):
  mtbench-answers  a model's answers to a question set under one generation config; item = question id
  mtbench-single   1-10 grades of those answers by one judge + prompt set + references; item = question id
  mtbench-pair     A/B verdicts of those answers against one opponent model; item = "<question id>:t<turn>"
A judging check names the answers check it grades, so changing max_new_tokens re-generates *and* re-judges,
while changing only the judge re-judges the answers already stored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mergeval.models import ModelRef
from mergeval.store import Store

ANSWERS_KIND = "mtbench-answers"
SINGLE_KIND = "mtbench-single"
PAIR_KIND = "mtbench-pair"
JUDGMENT_CACHE = "mtbench-judgment"  # store cache namespace: one entry per judge call (with its reminder retry)


def stable_hash(obj: Any, length: int = 24) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class CheckSpec:
    kind: str
    name: str
    config: dict[str, Any]

    @property
    def hash(self) -> str:
        return stable_hash({"kind": self.kind, "config": self.config})

    def register(self, store: Store, ref: ModelRef) -> None:
        """Record the model and this check in the store (idempotent)."""
        store.upsert_model(ref.fingerprint, name=ref.name, reference=ref.reference, kind=ref.kind,
                           metadata=ref.describe())
        store.upsert_check(self.hash, kind=self.kind, name=self.name, config=self.config)


def set_name(set_id: str) -> str:
    """'mergeval-v1:ab12..' -> 'mergeval-v1' (for display names of checks)."""
    return set_id.split(":", 1)[0]
