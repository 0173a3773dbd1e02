"""Per-item differences between a candidate and a parent, read from the store (nothing is recomputed).

`item_diffs(store, candidate, parent, task=...)` pairs the two models' stored items of each task under ONE
stored configuration (one check hash: the same task definition, few-shot count, dtype, chat setting) and
returns the items where they disagree: "lost" (the candidate is worse than the parent on the item: wrong
where the parent is right) and "gained" (the reverse), with what the store holds about each side:

  lm-eval      the choice (argmax of the per-choice log-likelihoods) or the generation and the answer the
               task's filter extracted, the gold target; the question and choice texts when the row stored
               them (rows written before mergeval kept them say "not stored")
  MT-Bench     both turns of each answer (from the answers the judge graded) with the judge's text and rating;
               the category
  HumanEval    the completion, the test result and the sandbox's message; the problem id

`item_diff_payload(store, report)` is the same view for every candidate and parent of a report, as compact
JSON-ready data for the HTML report's per-item view (mergeval.render.itemview).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mergeval.errors import UserError
from mergeval.store import CheckRow, ItemRow, ModelRow, Store

NOT_STORED = "not stored"
LM_EVAL = "lm-eval"
MTBENCH_SINGLE = "mtbench-single"
MTBENCH_ANSWERS = "mtbench-answers"
HUMANEVAL = "humaneval"
TASK_FACTS = "mergeval.task"  # the store's cache namespace of lm-eval task facts (mergeval.checks.lmeval)
# The kinds whose items one model scores on its own (A/B verdicts and answer generation are not such items).
_SKIPPED_KINDS = frozenset({MTBENCH_ANSWERS, "mtbench-pair"})
Only = Literal["lost", "gained"]
# What the group of an item is called, by check kind.
GROUP_LABELS = {LM_EVAL: "subject", MTBENCH_SINGLE: "category", HUMANEVAL: "problem"}


# -- results ------------------------------------------------------------------------------------------------


@dataclass
class Side:
    """One model's stored result of one item."""

    score: float | None  # the item's score (1/0 for right/wrong)
    answer: Any = None  # lm-eval: the choice index or the generation; HumanEval: the completion
    extracted: Any = None  # lm-eval generation: what the task's filter extracted (scored against the gold)
    loglikelihoods: list[float] | None = None  # lm-eval multiple choice: one per choice
    detail: dict[str, Any] = field(default_factory=dict)  # MT-Bench turns and judgments; HumanEval test result


@dataclass
class ItemDiff:
    task: str
    item_id: str
    status: str  # lost | gained
    candidate: Side
    parent: Side
    group: str | None = None  # MMLU subject, MT-Bench category, HumanEval problem
    question: Any = NOT_STORED  # the question text, or NOT_STORED
    choices: list[str] | None = None  # multiple-choice texts, when stored
    gold: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TaskDiff:
    """One task's pairing: how many items both models have under the configuration, and how they differ."""

    task: str
    kind: str
    check: str  # the check hash both models' items were read under
    metric: str
    n_compared: int = 0
    n_lost: int = 0
    n_gained: int = 0
    n_candidate_only: int = 0  # items only the candidate has (not compared)
    n_parent_only: int = 0


@dataclass
class DiffResult:
    candidate: str
    parent: str
    candidate_fingerprint: str
    parent_fingerprint: str
    tasks: list[TaskDiff]
    items: list[ItemDiff]  # at most `limit`; counts in `tasks` are complete
    only: str | None = None
    subject: str | None = None

    @property
    def n_lost(self) -> int:
        return sum(t.n_lost for t in self.tasks)

    @property
    def n_gained(self) -> int:
        return sum(t.n_gained for t in self.tasks)

    @property
    def n_compared(self) -> int:
        return sum(t.n_compared for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "parent": self.parent,
                "candidate_fingerprint": self.candidate_fingerprint, "parent_fingerprint": self.parent_fingerprint,
                "only": self.only, "subject": self.subject, "n_compared": self.n_compared, "n_lost": self.n_lost,
                "n_gained": self.n_gained, "tasks": [asdict(t) for t in self.tasks],
                "items": [it.to_dict() for it in self.items]}


# -- models, tasks and configurations ------------------------------------------------------------------------


def _open(store: Store | str | Path) -> tuple[Store, bool]:
    if isinstance(store, Store):
        return store, False
    return Store(store, create=False, readonly=True), True


def _model_names(store: Store) -> str:
    names = sorted({m.name for m in store.models()})
    return ", ".join(names) if names else "none"


def find_model(store: Store, key: str, checks: Sequence[CheckRow] = ()) -> ModelRow:
    """The stored model `key` names (name, reference, fingerprint prefix or a model folder's path); among
    several of one name, the ones with items of `checks`. UserError when none or still several."""
    found = store.find_models(key)
    if not found and Path(key).exists():
        resolved = str(Path(key).resolve())
        found = [m for m in store.models() if m.reference in (resolved, str(Path(key)))]
    if not found:
        raise UserError(f"No model {key!r} in the results store {store.path} (stored models: "
                        f"{_model_names(store)}); pass a stored model's name or fingerprint.")
    if len(found) > 1 and checks:
        with_items = [m for m in found if any(store.count_items(m.fingerprint, c.hash) for c in checks)]
        found = with_items or found
    if len(found) > 1:
        fps = ", ".join(m.fingerprint[:12] for m in found)
        raise UserError(f"{key!r} names {len(found)} stored models (fingerprints {fps}); pass a fingerprint "
                        "prefix instead.")
    return found[0]


def _suite_tasks(benchmark: str) -> list[str]:
    """The lm-eval tasks of a benchmark of a bundled suite (or the demo's skills) named `benchmark`."""
    try:
        from mergeval.suites import available_suites, load_suite
        from mergeval.suites.demo_skills import SUITE_FILE
    except ImportError:  # pragma: no cover - the suites are part of mergeval
        return []
    sources: list[str] = [str(SUITE_FILE), *available_suites()]
    for source in sources:
        try:
            benches = load_suite(source).benchmarks
        except Exception:  # noqa: BLE001  a suite that cannot be read names no task here
            benches = []
        for bench in benches:
            if bench.name == benchmark:
                return list(bench.tasks)
    return []


def stored_tasks(store: Store) -> dict[str, list[CheckRow]]:
    """Check name -> its stored configurations, for the kinds whose items compare one model to another."""
    out: dict[str, list[CheckRow]] = {}
    for row in store.checks():
        if row.kind not in _SKIPPED_KINDS:
            out.setdefault(row.name, []).append(row)
    return out


def resolve_tasks(store: Store, task: str | None, by_name: Mapping[str, list[CheckRow]] | None = None) -> list[str]:
    """The stored task names `task` stands for: a stored check name; a benchmark of a bundled suite
    (`arithmetic` -> demo_arithmetic, `mmlu` -> its 57 subjects); a prefix (`mmlu` -> mmlu_*, `mt-bench`)
    or a suffix (`arithmetic` -> demo_arithmetic). None: every stored task."""
    by_name = stored_tasks(store) if by_name is None else by_name
    if task is None:
        return sorted(by_name)
    if task in by_name:
        return [task]
    from_suite = [t for t in _suite_tasks(task) if t in by_name]
    if from_suite:
        return from_suite
    near = sorted(n for n in by_name if n.startswith((f"{task}_", f"{task}:")) or n.endswith(f"_{task}"))
    if near:
        return near
    if task.replace("-", "").replace("_", "").lower().endswith("mtbench"):  # a report's MT-Bench benchmark
        graded = sorted(n for n, rows in by_name.items() if rows[0].kind == MTBENCH_SINGLE)
        if graded:
            return graded
    known = ", ".join(sorted(by_name)[:20]) + (" ..." if len(by_name) > 20 else "")
    raise UserError(f"No stored results for task {task!r} in {store.path} (stored tasks: {known or 'none'}); "
                    "pass one of those names or a benchmark of the suite that ran them.")


def config_summary(row: CheckRow) -> str:
    """The settings that tell configurations of one task apart, in a few words."""
    cfg = row.config.get("config", row.config) if row.kind != LM_EVAL else row.config
    parts = []
    for key in ("num_fewshot", "dtype", "apply_chat_template", "task_version", "judge", "n", "temperature",
                "limit", "answers"):
        if key in cfg:
            value = cfg[key]
            if isinstance(value, Mapping):
                value = value.get("name") or value.get("model") or "{...}"
            if key == "answers" and isinstance(value, str):
                value = value[:10]
            parts.append(f"{key}={value}")
    return " ".join(parts) or "(no settings)"


def _matches(row: CheckRow, config: str) -> bool:
    """`config`: a check hash prefix, or `key=value[,key=value]` settings of the check's configuration."""
    if "=" not in config:
        return row.hash.startswith(config)
    cfg = row.config.get("config", row.config) if row.kind != LM_EVAL else row.config
    for pair in config.split(","):
        key, _, value = pair.partition("=")
        if str(cfg.get(key.strip())).lower() != value.strip().lower():
            return False
    return True


def pick_config(store: Store, task: str, rows: Sequence[CheckRow], cand: str, parent: str,
                config: str | None) -> CheckRow | None:
    """The one stored configuration of `task` both models have items under (None: there is none). Several:
    the one `config` names, else a UserError naming them."""
    shared = [r for r in rows if store.count_items(cand, r.hash) and store.count_items(parent, r.hash)]
    if config:
        shared = [r for r in shared if _matches(r, config)]
    if len(shared) <= 1:
        return shared[0] if shared else None
    options = "; ".join(f"{r.hash[:12]} ({config_summary(r)})" for r in shared)
    raise UserError(f"Both models have {task} under {len(shared)} configurations: {options}; pass --config with "
                    "a hash prefix or a setting such as dtype=float32.")


# -- reading one item ---------------------------------------------------------------------------------------


def _metric_key(store: Store, row: CheckRow, items: Iterable[ItemRow]) -> str:
    if row.kind == HUMANEVAL:
        return "passed"
    if row.kind == MTBENCH_SINGLE:
        return "score"
    facts = store.cache_get(TASK_FACTS, row.hash) or {}
    if facts.get("metric_key"):
        return str(facts["metric_key"])
    keys = sorted({k for it in items for k, v in it.metrics.items() if isinstance(v, (int, float))})
    first = next(iter(row.config.get("aggregations") or {}), None)
    for candidate in (f"{first},none" if first else None, *(k for k in keys if first and k.startswith(f"{first},"))):
        if candidate in keys:
            return candidate
    for common in ("acc,none", "exact_match,none", "passed", "score", "correct", "acc"):
        if common in keys:
            return common
    return keys[0] if keys else ""


def _score(kind: str, item: ItemRow, metric: str) -> float | None:
    if kind == MTBENCH_SINGLE:
        turns = [item.metrics.get(k) for k in ("score_t1", "score_t2")]
        valid = [float(v) for v in turns if isinstance(v, (int, float))]
        return sum(valid) / len(valid) if valid else None
    value = item.metrics.get(metric)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return float(value)
    return None


def _first(value: Any) -> Any:
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _loglikelihoods(filtered: Any) -> list[float] | None:
    """[[ll, greedy], ...] (lm-eval's multiple-choice responses) -> [ll, ...]; None for generations."""
    if not isinstance(filtered, list) or not filtered:
        return None
    out = []
    for resp in filtered:
        ll = resp[0] if isinstance(resp, list) and resp else resp
        if isinstance(ll, list) and ll:
            ll = ll[0]
        if not isinstance(ll, (int, float)) or isinstance(ll, bool):
            return None
        out.append(float(ll))
    return out


def _lmeval_side(item: ItemRow, metric: str, score: float | None, choices: list[str] | None) -> Side:
    data = item.data
    filter_name = metric.split(",", 1)[1] if "," in metric else "none"
    filtered = (data.get("filtered_resps") or {})
    picked = filtered.get(filter_name, filtered.get("none"))
    lls = _loglikelihoods(picked)
    if lls is not None:
        scores = lls
        if metric.startswith("acc_norm") and choices and len(choices) == len(lls):
            scores = [ll / max(len(c), 1) for ll, c in zip(lls, choices, strict=True)]
        choice = max(range(len(scores)), key=scores.__getitem__) if scores else None
        return Side(score, answer=choice, loglikelihoods=lls)
    generation = _first(data.get("resps"))
    extracted = _first(picked)
    return Side(score, answer=generation, extracted=extracted)


def _text(data: Mapping[str, Any]) -> tuple[Any, list[str] | None]:
    text = data.get("text") if isinstance(data.get("text"), Mapping) else {}
    question = text.get("question") if isinstance(text.get("question"), str) else NOT_STORED
    choices = text.get("choices")
    return question, [str(c) for c in choices] if isinstance(choices, list) else None


def _mmlu_subject(task: str) -> str | None:
    return task[len("mmlu_"):] if task.startswith("mmlu_") else None


def _answers(store: Store, row: CheckRow, fingerprint: str) -> dict[str, list[str]]:
    """MT-Bench: question id -> the answer turns the judging check graded (its `answers` identity)."""
    answers_hash = (row.config.get("config") or {}).get("answers")
    if not answers_hash:
        return {}
    return {it.item_id: list(it.data.get("turns") or [])
            for it in store.items(fingerprint, answers_hash, with_data=True)}


def _mtbench_side(item: ItemRow, score: float | None, turns: Sequence[str] | None) -> Side:
    judged = item.data.get("turns") or {}
    detail: dict[str, Any] = {"turns": []}
    for n in (1, 2):
        info = judged.get(str(n)) or {}
        judgments = info.get("judgments") or []
        detail["turns"].append({
            "turn": n,
            "answer": turns[n - 1] if turns and len(turns) >= n else NOT_STORED,
            "rating": item.metrics.get(f"score_t{n}"),
            "ratings": info.get("ratings"),
            "judgment": (judgments[0].get("text") if judgments and isinstance(judgments[0], Mapping) else None),
        })
    return Side(score, detail=detail)


def _humaneval_side(item: ItemRow, score: float | None) -> Side:
    d = item.data
    return Side(score, answer=d.get("completion"),
                detail={"status": d.get("status"), "message": d.get("detail"), "isolation": d.get("isolation")})


def _generic_side(item: ItemRow, score: float | None) -> Side:
    return Side(score, detail={k: v for k, v in item.data.items() if isinstance(v, (str, int, float, bool))})


# -- the diff -----------------------------------------------------------------------------------------------


def _status(cand: float | None, parent: float | None, higher_is_better: bool) -> str | None:
    if cand is None or parent is None or cand == parent:
        return None
    better = cand > parent if higher_is_better else cand < parent
    return "gained" if better else "lost"


def _item_sort_key(item_id: str) -> tuple[int, Any]:
    return (0, int(item_id)) if item_id.isdigit() else (1, item_id)


def diff_task(store: Store, task: str, row: CheckRow, cand: ModelRow, parent: ModelRow, *,
              only: str | None = None, subject: str | None = None) -> tuple[TaskDiff, list[ItemDiff]]:
    """Every differing item of one task under one configuration (`row`), lost and gained both counted."""
    # Scores first (metrics only: cheap), then the data of the items listed (a few percent of them).
    cand_items = {it.item_id: it for it in store.items(cand.fingerprint, row.hash)}
    par_items = {it.item_id: it for it in store.items(parent.fingerprint, row.hash)}
    metric = _metric_key(store, row, [*cand_items.values(), *par_items.values()])
    higher = True
    if row.kind == LM_EVAL:
        higher = bool((row.config.get("higher_is_better") or {}).get(metric.split(",")[0], True))
    summary = TaskDiff(task, row.kind, row.hash, metric,
                       n_candidate_only=len(cand_items.keys() - par_items.keys()),
                       n_parent_only=len(par_items.keys() - cand_items.keys()))
    shared = sorted(cand_items.keys() & par_items.keys(), key=_item_sort_key)
    answers_c = _answers(store, row, cand.fingerprint) if row.kind == MTBENCH_SINGLE else {}
    answers_p = _answers(store, row, parent.fingerprint) if row.kind == MTBENCH_SINGLE else {}
    differing: list[tuple[str, str, float, float]] = []
    for item_id in shared:
        c, p = cand_items[item_id], par_items[item_id]
        c_score, p_score = _score(row.kind, c, metric), _score(row.kind, p, metric)
        if c_score is None or p_score is None:
            continue
        summary.n_compared += 1
        status = _status(c_score, p_score, higher)
        if status is None:
            continue
        if status == "lost":
            summary.n_lost += 1
        else:
            summary.n_gained += 1
        if not only or status == only:
            differing.append((item_id, status, c_score, p_score))
    ids = [d[0] for d in differing]
    cand_data = {it.item_id: it for it in store.items(cand.fingerprint, row.hash, with_data=True, ids=ids)}
    par_data = {it.item_id: it for it in store.items(parent.fingerprint, row.hash, with_data=True, ids=ids)}
    out: list[ItemDiff] = []
    for item_id, status, c_score, p_score in differing:
        c, p = cand_data[item_id], par_data[item_id]
        group = _group(row.kind, task, item_id, c)
        if subject and not _group_matches(group, subject):
            continue
        out.append(_item(row.kind, task, item_id, status, group, c, p, c_score, p_score, metric,
                         answers_c.get(item_id), answers_p.get(item_id)))
    return summary, out


def _group(kind: str, task: str, item_id: str, item: ItemRow) -> str | None:
    if kind == LM_EVAL:
        return _mmlu_subject(task) or task
    if kind == MTBENCH_SINGLE:
        return item.data.get("category")
    if kind == HUMANEVAL:
        return item_id.rpartition("#")[0] or item_id
    return None


def _group_matches(group: str | None, wanted: str) -> bool:
    if group is None:
        return False
    g, w = group.lower(), wanted.lower()
    return g == w or g.endswith((f"_{w}", f"/{w}")) or w == g.removeprefix("mmlu_")


def _item(kind: str, task: str, item_id: str, status: str, group: str | None, c: ItemRow, p: ItemRow,
          c_score: float, p_score: float, metric: str, turns_c: Any, turns_p: Any) -> ItemDiff:
    if kind == LM_EVAL:
        question, choices = _text(c.data)
        if question == NOT_STORED:
            question, choices = _text(p.data)
        return ItemDiff(task, item_id, status, _lmeval_side(c, metric, c_score, choices),
                        _lmeval_side(p, metric, p_score, choices), group, question, choices, c.data.get("target"))
    if kind == MTBENCH_SINGLE:
        return ItemDiff(task, item_id, status, _mtbench_side(c, c_score, turns_c), _mtbench_side(p, p_score, turns_p),
                        group, c.data.get("question", NOT_STORED))
    if kind == HUMANEVAL:
        return ItemDiff(task, item_id, status, _humaneval_side(c, c_score), _humaneval_side(p, p_score), group)
    return ItemDiff(task, item_id, status, _generic_side(c, c_score), _generic_side(p, p_score), group)


def item_diffs(store: Store | str | Path, candidate: str, parent: str, task: str | None = None,
               only: Only | None = None, *, subject: str | None = None, limit: int | None = None,
               config: str | None = None) -> DiffResult:
    """The items where `candidate` and `parent` disagree, from the store (nothing is recomputed).

    `task`: a stored task (check name), a benchmark of a bundled suite or a name prefix/suffix (None: every
    task both models have). `only`: "lost" (candidate worse than the parent on the item) or "gained".
    `subject`: an MMLU subject, MT-Bench category or HumanEval problem id. `limit`: at most this many items
    listed (the counts stay complete). `config`: which stored configuration (a check hash prefix or
    `key=value` settings) when a task was evaluated under several."""
    if only not in (None, "lost", "gained"):
        raise UserError(f"Unknown filter {only!r}; pass only='lost' or only='gained'.")
    db, owned = _open(store)
    try:
        by_name = stored_tasks(db)
        names = resolve_tasks(db, task, by_name)
        rows = [r for n in names for r in by_name[n]]
        cand = find_model(db, candidate, rows)
        par = find_model(db, parent, rows)
        if cand.fingerprint == par.fingerprint:
            raise UserError(f"{candidate!r} and {parent!r} are the same stored model; pass two different models.")
        tasks: list[TaskDiff] = []
        items: list[ItemDiff] = []
        for name in names:
            row = pick_config(db, name, by_name[name], cand.fingerprint, par.fingerprint, config)
            if row is None:
                continue
            summary, found = diff_task(db, name, row, cand, par, only=only, subject=subject)
            tasks.append(summary)
            items.extend(found)
        if not tasks:
            what = f"task {task!r}" if task else "any task"
            hint = " under that configuration" if config else ""
            raise UserError(f"{cand.name} and {par.name} have no stored items of {what} in common{hint}; evaluate "
                            "both on it first (mergeval eval or mergeval run).")
        if limit is not None:
            items = items[: max(0, limit)]
        return DiffResult(cand.name, par.name, cand.fingerprint, par.fingerprint, tasks, items, only, subject)
    finally:
        if owned:
            db.close()


# -- the HTML report's per-item view ------------------------------------------------------------------------

MAX_ITEMS = 5000  # per candidate and benchmark
MAX_CHARS = 4000  # per text


def _cut(value: Any, max_chars: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= max_chars else value[:max_chars] + f"... [{len(value) - max_chars} more chars]"
    if isinstance(value, list):
        return [_cut(v, max_chars) for v in value]
    if isinstance(value, Mapping):
        return {k: _cut(v, max_chars) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4)
    return value


def _compact_side(side: Side, choices: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"score": side.score}
    answer = side.answer
    if side.loglikelihoods is not None and isinstance(answer, int):
        out["choice"] = answer
        if choices and answer < len(choices):
            answer = choices[answer]
        out["ll"] = side.loglikelihoods
    if answer is not None:
        out["answer"] = answer
    if side.extracted is not None:
        out["extracted"] = side.extracted
    if side.detail:
        out["detail"] = side.detail
    return out


def compact_item(item: ItemDiff, parent: str, max_chars: int = MAX_CHARS) -> dict[str, Any]:
    """One differing item as the HTML view reads it (short keys, texts cut at `max_chars`)."""
    gold = item.gold
    if item.choices and isinstance(gold, int) and 0 <= gold < len(item.choices):
        gold = f"{gold}: {item.choices[gold]}"
    out = {"t": item.task, "id": item.item_id, "p": parent, "s": item.status, "g": item.group,
           "q": item.question, "gold": gold, "c": _compact_side(item.candidate, item.choices),
           "r": _compact_side(item.parent, item.choices)}
    if item.choices:
        out["ch"] = item.choices
    return _cut(out, max_chars)


def _benchmark_tasks(store: Store, report: Any, bench: Any, by_name: Mapping[str, list[CheckRow]]) -> list[str]:
    subjects = [s.task for s in (report.subjects.get(bench.name) or [])]
    known = [t for t in subjects if t in by_name]
    if known:
        return known
    try:
        return resolve_tasks(store, bench.name, by_name)
    except UserError:
        return []


def _report_config(report: Any, task: str, rows: Sequence[CheckRow], cand: str, parent: str,
                   store: Store) -> CheckRow | None:
    """The configuration the report read `task` under (its provenance), else the one both models share with
    the most items."""
    info = (report.provenance.tasks or {}).get(task) or {}
    wanted = info.get("check") if isinstance(info, Mapping) else None
    shared = [r for r in rows if store.count_items(cand, r.hash) and store.count_items(parent, r.hash)]
    for r in shared:
        if r.hash == wanted:
            return r
    if not shared:
        return None
    return max(shared, key=lambda r: store.count_items(cand, r.hash) + store.count_items(parent, r.hash))


def item_diff_payload(store: Store | str | Path, report: Any, *, max_items: int = MAX_ITEMS,
                      max_chars: int = MAX_CHARS) -> dict[str, Any]:
    """The per-item view of a report: for each benchmark and candidate, the items where it and each of its
    parents disagree (at most `max_items` per candidate and benchmark, texts cut at `max_chars`; the counts
    are complete), read from the store. A benchmark nothing can be paired for is left out."""
    from mergeval.report import Report

    report = Report.from_data(report)
    db, owned = _open(store)
    try:
        by_name = stored_tasks(db)
        fps = {m.name: m.fingerprint for m in report.models}
        parents = [m.name for m in report.models if m.role == "parent"]
        candidates = [m.name for m in report.models if m.role == "candidate"]
        benchmarks: list[dict[str, Any]] = []
        for bench in report.benchmarks:
            tasks = _benchmark_tasks(db, report, bench, by_name)
            if not tasks:
                continue
            entry: dict[str, Any] = {"name": bench.name, "display": bench.display or bench.name,
                                     "group_label": GROUP_LABELS.get(by_name[tasks[0]][0].kind, "group"),
                                     "candidates": {}}
            for cand in candidates:
                cand_row = _model_row(db, cand, fps.get(cand))
                if cand_row is None:
                    continue
                block = {"counts": {}, "items": [], "truncated": False}
                for parent in parents:
                    par_row = _model_row(db, parent, fps.get(parent))
                    if par_row is None:
                        continue
                    counts = {"n_compared": 0, "n_lost": 0, "n_gained": 0}
                    for task in tasks:
                        row = _report_config(report, task, by_name[task], cand_row.fingerprint,
                                             par_row.fingerprint, db)
                        if row is None:
                            continue
                        summary, found = diff_task(db, task, row, cand_row, par_row)
                        for key in counts:
                            counts[key] += getattr(summary, key)
                        room = max_items - len(block["items"])
                        if len(found) > room:
                            block["truncated"] = True
                        block["items"].extend(compact_item(it, parent, max_chars) for it in found[:room])
                    if counts["n_compared"]:
                        block["counts"][parent] = counts
                if block["counts"]:
                    entry["candidates"][cand] = block
            if entry["candidates"]:
                benchmarks.append(entry)
        return {"version": 1, "max_items": max_items, "max_chars": max_chars, "benchmarks": benchmarks}
    finally:
        if owned:
            db.close()


def _model_row(store: Store, name: str, fingerprint: str | None) -> ModelRow | None:
    if fingerprint:
        row = store.model(fingerprint)
        if row is not None:
            return row
    found = store.find_models(name)
    return found[0] if len(found) == 1 else None


__all__ = [
    "NOT_STORED",
    "DiffResult",
    "ItemDiff",
    "Side",
    "TaskDiff",
    "compact_item",
    "config_summary",
    "diff_task",
    "find_model",
    "item_diff_payload",
    "item_diffs",
    "pick_config",
    "resolve_tasks",
    "stored_tasks",
]
