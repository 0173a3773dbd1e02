"""The `sanity` check type: fast probes of a merged model, run first in a plan (before anything expensive).

The probes (generation for "Hello" and Paris, repetition, NaN weights, tokenizer and chat template against
the parents) are `mergeval.engines.text.sanity`; they load the model once and take seconds. Each probe is one
stored item (`pass` 1/0 and its detail), and a `footprint` item holds the facts `size_gb`, `params_b` and
`tokens_per_second` for the checklist's size and speed gates. A candidate is checked against the plan's
parents: their fingerprints are part of the identity (all but endpoints, which have no tokenizer: a parent
whose folder is gone and that is known only from the store keeps the identity as it was).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Literal

from pydantic import Field

from mergeval.checks._text import ModelSelection, TextCheck, run_on_models
from mergeval.core.check import Batch, CheckConfig, MetricSpec, Task
from mergeval.core.context import CheckContext, PlanModel, RunEnv
from mergeval.core.identity import content_hash
from mergeval.core.progress import Progress, within_batch
from mergeval.core.registry import check
from mergeval.core.results import CheckData, Missing
from mergeval.dtypes import resolved_dtype, stored_hash
from mergeval.engines.text.sanity import (
    CHECK_ORDER,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MAX_REPETITION,
    PROMPTS,
    SANITY_VERSION,
    SanityResult,
    load_parent_tokenizers,
    require_weights,
    run_probes,
)
from mergeval.models import ModelRef, chat_template_hash, load_hf
from mergeval.store import ItemRow, Store

KIND = "sanity"
FOOTPRINT = "footprint"  # the item that holds the facts
PARENT_PROBES = ("tokenizer", "chat_template")  # run when there are parents' tokenizers to compare with
FACTS = (
    ("size_gb", "Size", "GB", False),
    ("params_b", "Parameters", "billions", False),
    ("tokens_per_second", "Generation speed", "tokens/s", True),
)


class SanityConfig(CheckConfig):
    """`- type: sanity` in a plan: the probes for the candidates (or `models: all`, or a list of names)."""

    type: Literal["sanity"] = "sanity"
    models: ModelSelection = Field("candidates", description="which models to check")
    max_new_tokens: int = Field(
        DEFAULT_MAX_NEW_TOKENS, ge=8, le=2048, description="length of the long answer"
    )
    max_repetition: float = Field(
        DEFAULT_MAX_REPETITION, gt=0, le=1, description="largest acceptable share of repeated token 4-grams"
    )


# -- identity ----------------------------------------------------------------------------------------------


def identity(
    ref: ModelRef,
    parents: Sequence[ModelRef] = (),
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_repetition: float = DEFAULT_MAX_REPETITION,
) -> dict[str, Any]:
    """What identifies a sanity run (the stored check config; its hash is the check hash)."""
    return {
        "engine": KIND,
        "version": SANITY_VERSION,
        "prompts": PROMPTS,
        "max_new_tokens": max_new_tokens,
        "max_repetition": max_repetition,
        "dtype": resolved_dtype(ref),  # what the weights are loaded in (`auto` resolved: one check)
        "parents": sorted(p.fingerprint for p in parents if p.kind != "endpoint"),
    }


def _identity(config: SanityConfig, ref: ModelRef, parents: Sequence[ModelRef]) -> dict[str, Any]:
    return identity(ref, parents, max_new_tokens=config.max_new_tokens, max_repetition=config.max_repetition)


def make_task(config: SanityConfig, ref: ModelRef, parents: Sequence[ModelRef] = ()) -> Task:
    """The probes of `ref` against `parents` (those with local files give the tokenizers to compare with)."""
    local = {p.name: [str(p.path), p.trust_remote_code] for p in parents if p.path is not None}
    probes = [c for c in CHECK_ORDER if local or c not in PARENT_PROBES]
    return Task(
        kind=KIND,
        name=KIND,
        config=_identity(config, ref, parents),
        item_ids=(*probes, FOOTPRINT),
        inputs={"parents": local},
        provenance={
            "dtype": ref.dtype,
            "device": ref.device or "cpu",
            "chat_template_hash": chat_template_hash(ref.path),
            "parents": [p.name for p in parents],
        },
        batch_size=len(probes) + 1,  # the probes run as one piece, stored in one transaction
    )


# -- reading back ----------------------------------------------------------------------------------------


def stored_sanity(
    store: Store,
    ref: ModelRef,
    parents: Sequence[ModelRef] = (),
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_repetition: float = DEFAULT_MAX_REPETITION,
) -> tuple[list[dict[str, Any]], dict[str, float]] | None:
    """The stored sanity results of `ref` as ([{check, status, detail}], facts); None when not run yet."""
    config = identity(ref, parents, max_new_tokens=max_new_tokens, max_repetition=max_repetition)
    rows = store.items(ref.fingerprint, stored_hash(store, ref, config, content_hash), with_data=True)
    if not rows:
        return None
    facts: dict[str, float] = {}
    results = []
    for row in rows:
        if row.item_id == FOOTPRINT:
            facts = {k: float(v) for k, v in row.metrics.items()}
            continue
        status = "pass" if row.metrics.get("pass") else "fail"
        results.append({"check": row.item_id, "status": status, "detail": row.data.get("detail", "")})
    order = {c: i for i, c in enumerate(CHECK_ORDER)}
    results.sort(key=lambda r: order.get(r["check"], len(order)))
    return results, facts


# -- the check type ------------------------------------------------------------------------------------------


def _parents_of(model: PlanModel, ctx: CheckContext) -> list[ModelRef]:
    """A candidate is compared with the plan's parents; any other model with nothing."""
    return [p.ref for p in ctx.by_role("parent")] if model.role == "candidate" else []


def _item(result: SanityResult) -> ItemRow:
    data = {"detail": result.detail}
    if result.text is not None:
        data["text"] = result.text
    return ItemRow(result.check, {"pass": 1.0 if result.passed else 0.0, **result.metrics}, data)


@dataclass
class _Engine:
    model: Any
    tokenizer: Any
    ref: ModelRef
    config: SanityConfig


@check("sanity")
class Sanity(TextCheck[SanityConfig]):
    Config = SanityConfig
    description = "fast generation and weight checks of the merged model"
    order = 0  # first: seconds per model, and a broken merge shows before hours of benchmarks
    known_metrics = tuple(name for name, *_ in FACTS)

    def metric_specs(self, config: SanityConfig, prefix: str) -> list[MetricSpec]:
        # one set of facts per model, whatever the prefix: a second sanity check measures the same model
        return [
            MetricSpec(
                name,
                display,
                kind="fact",
                scale=1.0,
                range=(0.0, None),
                higher_is_better=higher,
                unit=unit,
                check=config.label,
            )
            for name, display, unit, higher in FACTS
        ]

    def task_for(self, config: SanityConfig, ctx: CheckContext, model: PlanModel) -> Task:
        return make_task(config, model.ref, _parents_of(model, ctx))

    def load(self, config: SanityConfig, model: ModelRef, stage: str, env: RunEnv) -> _Engine:
        require_weights(model)
        loaded, tokenizer = load_hf(model)
        return _Engine(loaded, tokenizer, model, config)

    def evaluate(self, engine: _Engine, task: Task, item_ids: Sequence[str]) -> Iterator[Batch]:
        parents = load_parent_tokenizers(
            {name: (path, trust) for name, (path, trust) in task.inputs["parents"].items()}
        )
        config = engine.config
        results, facts = run_probes(
            engine.model,
            engine.tokenizer,
            parents,
            folder=engine.ref.path,
            max_new_tokens=config.max_new_tokens,
            max_repetition=config.max_repetition,
            on_probe=lambda done, total: within_batch(len(item_ids), done, total),  # the bar moves per probe
        )
        rows = [_item(r) for r in results] + [ItemRow(FOOTPRINT, facts, {})]
        wanted = set(item_ids)
        yield Batch([row for row in rows if row.item_id in wanted])

    def provenance(self, engine: _Engine, task: Task) -> dict[str, Any]:
        return {"torch_version": version("torch")}

    def collect(self, config: SanityConfig, ctx: CheckContext) -> CheckData:
        data = self.check_data(config, ctx)
        for m in ctx.select(config.models):
            stored = stored_sanity(
                ctx.store,
                m.ref,
                _parents_of(m, ctx),
                max_new_tokens=config.max_new_tokens,
                max_repetition=config.max_repetition,
            )
            if stored is None:
                data.missing.append(Missing(m.name, data.check, None, "sanity checks not run yet"))
                continue
            results, facts = stored
            data.sanity += [{"model": m.name, **r} for r in results]
            data.facts[m.name] = facts
        data.provenance = {
            "version": SANITY_VERSION,
            "prompts": PROMPTS,
            "config": config.model_dump(mode="json"),
        }
        return data


def run_sanity_checks(
    store: Store,
    ref: ModelRef,
    parents: Sequence[ModelRef] = (),
    config: SanityConfig | None = None,
    *,
    progress: Progress | None = None,
) -> int:
    """Run the probes of `ref` (against `parents`) unless the store has them; how many items were stored
    now."""
    require_weights(ref)
    models = [(ref, "candidate"), *((p, "parent") for p in parents)]
    return run_on_models(Sanity(), config or SanityConfig(), store, models, progress)


__all__ = ["Sanity", "SanityConfig", "identity", "make_task", "run_sanity_checks", "stored_sanity"]
