"""The lm-eval adapter: run the items of a task that are not stored yet, store each one as it completes.

How a run stays identical to plain lm-eval while being resumable:
  - lm-eval draws few-shot examples from one random stream per task, in document order, so the few-shot
    context of document i depends on the documents before it. We therefore build the requests of documents
    0..max(needed) in order, exactly as a full lm-eval run does, and keep only the documents still missing.
  - The missing documents are then evaluated in small chunks through `lm_eval.evaluator.evaluate` itself
    (its filters, `process_results` and metric code), with the chunk's prebuilt requests handed to it. Each
    chunk's per-item results are written to the store in one transaction, so a killed run loses at most the
    chunk in flight.
  - Aggregates are computed from the stored items with the task's own aggregation functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mergeval.errors import UserError
from mergeval.models import ModelRef, chat_template_hash
from mergeval.store import ItemRow, Store
from mergeval.suites import Benchmark, Suite

log = logging.getLogger("mergeval")

DATA_DIR_ENV = "MERGEVAL_DATA_DIR"
FEWSHOT_SEED = 1234  # lm-eval's default fewshot_random_seed
CHECK_KIND = "lm-eval"


def _quiet_lm_eval() -> None:
    for name in ("lm_eval", "lm-eval", "lm_eval.api.task", "lm_eval.evaluator", "lm_eval.models.huggingface"):
        logger = logging.getLogger(name)
        if logger.level < logging.ERROR and not logging.getLogger("mergeval").isEnabledFor(logging.INFO):
            logger.setLevel(logging.ERROR)


def _stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


def lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


# -- tasks -------------------------------------------------------------------------------------------------


@dataclass
class PreparedTask:
    """An lm-eval task loaded (data included) and bound to a check identity."""

    name: str
    benchmark: Benchmark
    task: Any  # lm_eval.api.task.Task
    check_hash: str
    check_config: dict[str, Any]
    metric_key: str  # "acc_norm,none"
    n_docs: int
    dataset_source: str

    def target_ids(self, limit: int | float | None) -> list[int]:
        """The document ids a run with this limit covers: lm-eval's first-n semantics."""
        if limit is None:
            return list(range(self.n_docs))
        n = int(math.ceil(self.n_docs * limit)) if limit < 1.0 else int(limit)
        return list(range(min(n, self.n_docs)))


def parse_limit(value: str | int | float | None) -> int | float | None:
    """`--limit`: a whole number of items per task, or a fraction in (0, 1)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"--limit {value!r} is not a number. Use a count (e.g. 50) or a fraction (e.g. 0.1).")
    if number <= 0 or (number >= 1 and number != int(number)):
        raise UserError(f"--limit {value!r} must be a positive whole number or a fraction between 0 and 1.")
    return int(number) if number >= 1 else number


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    value = data_dir or os.environ.get(DATA_DIR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UserError(f"Data dir {path} does not exist. Create it with `mergeval data pull --to {path}`.")
    return path


def _folder_state(folder: Path) -> tuple:
    return tuple(sorted((p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                        for p in folder.rglob("*") if p.is_file()))


@lru_cache(maxsize=256)
def _content_digest(folder: Path, state: tuple) -> str:
    digest = hashlib.sha256()
    for rel, _, _ in state:
        digest.update(rel.encode() + b"\0")
        with (folder / rel).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def dataset_cache_dir(folder: Path) -> Path:
    """A `datasets` cache folder that belongs to this exact content of a local hub-layout dataset folder.

    `datasets` keys the Arrow cache of a local folder by its name and README only, so an edited mirror or two
    mirrors with the same folder name would silently serve stale rows (huggingface/datasets#6465). Naming the
    cache after the files' content makes every change a fresh cache and unchanged data a cache hit."""
    import datasets

    digest = _content_digest(folder, _folder_state(folder))
    return Path(datasets.config.HF_DATASETS_CACHE) / "mergeval_local" / f"{folder.name}-{digest}"


class TaskLoader:
    """Indexes only the task folders a suite needs (the full lm-eval index takes seconds) and loads tasks
    with their dataset paths pointed at a local mirror when one holds the dataset."""

    def __init__(self, suite: Suite, *, data_dir: Path | None = None, include_paths: Iterable[str] = ()):
        from lm_eval.tasks import TaskManager

        _quiet_lm_eval()
        self.suite = suite
        self.data_dir = data_dir
        paths = [str(p) for p in suite.task_paths()] + [str(Path(p).resolve()) for p in include_paths]
        for p in paths:
            if not Path(p).exists():
                raise UserError(f"Task folder {p} does not exist. Check --include-path.")
        self.manager = TaskManager(include_path=paths, include_defaults=False)

    def _config(self, name: str) -> dict[str, Any]:
        from lm_eval.tasks._yaml_loader import load_yaml

        entry = self.manager.task_index.get(name)
        if entry is None or entry.yaml_path is None:
            known = sorted(self.manager.all_subtasks)[:12]
            raise UserError(
                f"Unknown lm-eval task {name!r}. Check the name, or add the folder that defines it with "
                f"--include-path. Known here: {', '.join(known)}{', ...' if len(known) == 12 else ''}"
            )
        return dict(load_yaml(entry.yaml_path, resolve_func=True))

    def _dataset_source(self, cfg: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Point `dataset_path` at a local mirror if one holds it; returns (overrides, where the data is from)."""
        hub_path = cfg.get("dataset_path")
        if not hub_path or Path(hub_path).is_absolute():
            return {}, str(hub_path)
        for root in (self.suite.bundled_data_root(), self.data_dir):
            if root is not None and (root / hub_path).is_dir():
                folder = root / hub_path
                kwargs = {**(cfg.get("dataset_kwargs") or {}), "cache_dir": str(dataset_cache_dir(folder))}
                return {"dataset_path": str(folder), "dataset_kwargs": kwargs}, f"mirror:{folder}"
        return {}, f"hub:{hub_path}"

    def config_for(self, name: str, benchmark: Benchmark) -> tuple[dict[str, Any], str]:
        """The lm-eval task config mergeval runs (local data path, the suite's few-shot count), and where its
        data comes from. Passing this dict to `lm_eval.simple_evaluate(tasks=[cfg])` runs the same task."""
        cfg = self._config(name)
        overrides, source = self._dataset_source(cfg)
        cfg.update(overrides)
        if benchmark.num_fewshot is not None and cfg.get("num_fewshot") != 0:
            cfg["num_fewshot"] = benchmark.num_fewshot
        return cfg, source

    def load(self, name: str, benchmark: Benchmark, *, dtype: str, apply_chat_template: bool = False) -> PreparedTask:
        cfg, source = self.config_for(name, benchmark)
        try:
            task = self.manager.load([cfg])["tasks"][name]
        except UserError:
            raise
        except Exception as exc:  # datasets / hub errors come in many types
            hub_path = cfg.get("dataset_path")
            raise UserError(
                f"Could not load the data of task {name} ({type(exc).__name__}: {str(exc)[:300]}). "
                f"Without network access, pull the data first (`mergeval data pull --suite {self.suite.name} "
                f"--to DIR` on a machine with internet) and pass --data-dir DIR (or set {DATA_DIR_ENV}); "
                f"the mirror must hold {hub_path}."
            ) from exc
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=FEWSHOT_SEED)

        metric_key = benchmark.metric_key
        if benchmark.metric == "*":  # custom task: the first metric it defines, first filter
            metric = next(iter(task._metric_fn_list))
            filters = [f.name for f in getattr(task, "_filters", [])] or ["none"]
            metric_key = f"{metric},{filters[0]}"

        # Identity: the task as defined (prompts, metrics, filters, generation settings), not where its data
        # was read from on this machine (hub or mirror, cache folder).
        dumped = task.dump_config()
        original = self._config(name)
        for location in ("dataset_path", "dataset_kwargs", "metadata"):
            dumped.pop(location, None)
        dumped["dataset_path"] = original.get("dataset_path")
        dumped["dataset_kwargs"] = original.get("dataset_kwargs")
        check_config = {
            "engine": CHECK_KIND,
            "task": name,
            "task_version": (task.config.metadata or {}).get("version") if task.config.metadata else None,
            "task_config_hash": _stable_hash(dumped),
            "num_fewshot": task.get_config("num_fewshot"),
            "fewshot_seed": FEWSHOT_SEED,
            "dtype": dtype,
            "apply_chat_template": apply_chat_template,
            "aggregations": {m: _aggregation_name(fn) for m, fn in task.aggregation().items()},
            "higher_is_better": dict(task.higher_is_better()),
        }
        return PreparedTask(
            name=name, benchmark=benchmark, task=task, check_hash=_stable_hash(check_config),
            check_config=check_config, metric_key=metric_key, n_docs=len(task.eval_docs), dataset_source=source,
        )


def _aggregation_name(fn: Callable) -> str:
    from lm_eval.api.registry import AGGREGATION_REGISTRY

    for name, registered in AGGREGATION_REGISTRY.items():
        if registered is fn:
            return name
    return getattr(fn, "__name__", "mean")


# -- models as lm-eval LMs -----------------------------------------------------------------------------------


def default_backend() -> str:
    """`mergeval-hf` (prefix-sharing scorer) when it is installed, else lm-eval's plain `hf`."""
    try:
        import mergeval.scoring  # noqa: F401  registers mergeval-hf
        from lm_eval.api.registry import get_model

        get_model("mergeval-hf")
        return "mergeval-hf"
    except Exception:
        return "hf"


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def make_lm(ref: ModelRef, backend: str | None = None):
    """An lm-eval LM for a local model reference."""
    from lm_eval.api.registry import get_model

    if ref.path is None and ref.model_object is None:
        raise UserError(f"{ref.name} is an endpoint; lm-eval tasks need local weights. Pass a model folder.")
    backend = backend or default_backend()
    if backend == "mergeval-hf":
        import mergeval.scoring  # noqa: F401
    kwargs: dict[str, Any] = dict(
        pretrained=ref.model_object if ref.model_object is not None else str(ref.path),
        batch_size=ref.batch_size,
        trust_remote_code=ref.trust_remote_code,
    )
    if ref.model_object is not None:
        from transformers import AutoTokenizer

        kwargs["tokenizer"] = AutoTokenizer.from_pretrained(ref.path)
    else:
        kwargs["dtype"] = ref.dtype
    kwargs["device"] = ref.device or default_device()
    try:
        lm = get_model(backend)(**kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"Could not load model {ref.name} from {ref.path}: {exc}") from exc
    if os.environ.get("TQDM_DISABLE") == "1":
        _silence_request_bars(lm)
    return lm


def _silence_request_bars(lm) -> None:
    """HFLM draws a tqdm bar per request type unless called with disable_tqdm=True; our progress replaces it."""
    import functools
    import inspect

    for method in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        fn = getattr(lm, method, None)
        if fn is not None and "disable_tqdm" in inspect.signature(fn).parameters:
            setattr(lm, method, functools.partial(fn, disable_tqdm=True))


# -- running ---------------------------------------------------------------------------------------------


def _instances_by_doc(task, max_doc: int) -> dict[int, list]:
    """Build requests for documents 0..max_doc in order (the few-shot random stream of a full run)."""
    task.set_fewshot_seed(seed=FEWSHOT_SEED)
    task.build_all_requests(limit=max_doc + 1, rank=0, world_size=1)
    by_doc: dict[int, list] = defaultdict(list)
    for inst in task.instances:
        by_doc[inst.doc_id].append(inst)
    return by_doc


def _fresh_chunk(task_name: str, by_doc: dict[int, list], chunk: list[int]) -> list:
    """Copies of the chunk's requests with doc ids renumbered by position (what `evaluate(samples=...)` expects)."""
    from lm_eval.api.instance import Instance

    out = []
    for pos, doc_id in enumerate(chunk):
        for inst in by_doc[doc_id]:
            out.append(Instance(request_type=inst.request_type, doc=inst.doc, arguments=inst.arguments,
                                idx=inst.idx, metadata=(task_name, pos, inst.repeats)))
    return out


def _item_from_samples(doc_id: int, samples: list[dict]) -> ItemRow:
    """Merge lm-eval's logged samples of one document (one per filter) into one stored item."""
    metrics: dict[str, Any] = {}
    filtered: dict[str, Any] = {}
    first = samples[0]
    for s in samples:
        for m in s["metrics"]:
            metrics[f"{m},{s['filter']}"] = s[m]
        filtered[s["filter"]] = s["filtered_resps"]
    data = {
        "target": first["target"],
        "resps": first["resps"],
        "filtered_resps": filtered,
        "doc_hash": first["doc_hash"],
        "prompt_hash": first["prompt_hash"],
    }
    return ItemRow(item_id=str(doc_id), metrics=metrics, data=json.loads(json.dumps(data, default=str)))


@dataclass
class TaskProgress:
    """Callbacks the CLI uses to draw progress; all optional."""

    start: Callable[[str, str, int], None] = lambda model, task, total: None
    advance: Callable[[int], None] = lambda n: None
    done: Callable[[], None] = lambda: None


def chunk_size_for(task, batch_size: int) -> int:
    """Documents per `evaluate` call (and per store transaction: a killed run loses at most one chunk).
    Generation gets four batches' worth, so mergeval-hf's continuous batching has rows to refill its slots
    with while a long answer finishes, instead of decoding it alone at the end of every chunk."""
    if task.OUTPUT_TYPE == "generate_until":
        return max(batch_size * 4, 16)
    return max(batch_size * 2, 8)


def run_task(
    store: Store,
    ref: ModelRef,
    prepared: PreparedTask,
    *,
    limit: int | float | None,
    get_lm: Callable[[], Any],
    progress: TaskProgress | None = None,
    chunk_size: int | None = None,
    provenance: dict[str, Any] | None = None,
) -> int:
    """Evaluate the documents of `prepared` that the store does not have for this model. Returns how many
    were evaluated now (0 when everything was stored already: the model is then never loaded)."""
    from lm_eval.evaluator import evaluate

    progress = progress or TaskProgress()
    targets = prepared.target_ids(limit)
    stored = store.item_ids(ref.fingerprint, prepared.check_hash)
    missing = [d for d in targets if str(d) not in stored]
    if not missing:
        return 0
    store.upsert_check(prepared.check_hash, kind=CHECK_KIND, name=prepared.name, config=prepared.check_config)
    lm = get_lm()
    task = prepared.task
    by_doc = _instances_by_doc(task, max(missing))
    size = chunk_size or chunk_size_for(task, ref.batch_size)
    prov = {
        "lm_eval_version": lm_eval_version(),
        "backend": type(lm).__name__,
        "task": prepared.name,
        "task_version": prepared.check_config.get("task_version"),
        "num_fewshot": prepared.check_config["num_fewshot"],
        "dtype": ref.dtype,
        "batch_size": ref.batch_size,
        "device": str(getattr(lm, "device", ref.device)),
        "chat_template_hash": chat_template_hash(ref.path),
        "dataset_source": prepared.dataset_source,
        "limit": limit,
        **(provenance or {}),
    }
    run_id = store.start_run(ref.fingerprint, prepared.check_hash, prov)
    progress.start(ref.name, prepared.name, len(missing))
    started = time.time()
    status = "failed"
    try:
        for i in range(0, len(missing), size):
            chunk = missing[i: i + size]
            instances = _fresh_chunk(prepared.name, by_doc, chunk)

            def _use_prebuilt(*args, _inst=instances, **kwargs):
                task._instances = _inst

            task.build_all_requests = _use_prebuilt
            try:
                out = evaluate(lm=lm, task_dict={"tasks": {prepared.name: task}, "groups": {}, "group_map": {}},
                               samples={prepared.name: chunk}, bootstrap_iters=0, log_samples=True)
            finally:
                del task.build_all_requests
            per_doc: dict[int, list[dict]] = defaultdict(list)
            for sample in out["samples"][prepared.name]:
                per_doc[int(sample["doc_id"])].append(sample)
            store.add_items(ref.fingerprint, prepared.check_hash, run_id,
                            [_item_from_samples(d, per_doc[d]) for d in chunk])
            progress.advance(len(chunk))
        status = "done"
    finally:
        prov["seconds"] = round(time.time() - started, 3)
        stats = getattr(lm, "stats", None)
        if isinstance(stats, dict):
            prov["backend_stats"] = dict(stats)
        store.finish_run(run_id, status=status, provenance=prov)
        progress.done()
    return len(missing)


# -- aggregation -----------------------------------------------------------------------------------------


@dataclass
class TaskScore:
    task: str
    metric_key: str
    value: float | None
    stderr: float | None
    n: int
    n_target: int
    all_metrics: dict[str, float] = field(default_factory=dict)


def aggregate_items(items: list[ItemRow], check_config: dict[str, Any], metric_key: str,
                    target_ids: set[str] | None = None) -> TaskScore:
    """The task's score from stored items, with lm-eval's own aggregation and stderr functions."""
    from lm_eval.api.metrics import stderr_for_metric
    from lm_eval.api.registry import get_aggregation

    if target_ids is not None:
        items = [it for it in items if it.item_id in target_ids]
    items = sorted(items, key=lambda it: int(it.item_id) if it.item_id.isdigit() else it.item_id)
    values: dict[str, list] = defaultdict(list)
    for it in items:
        for key, v in it.metrics.items():
            values[key].append(v)
    all_metrics: dict[str, float] = {}
    stderrs: dict[str, float | None] = {}
    for key, vals in values.items():
        metric = key.split(",")[0]
        agg_name = check_config.get("aggregations", {}).get(metric, "mean")
        try:
            fn = get_aggregation(agg_name)
        except Exception:
            fn = None
        if fn is None:
            continue
        all_metrics[key] = float(fn(vals))
        se_fn = stderr_for_metric(metric=fn, bootstrap_iters=1000) if len(vals) > 1 else None
        stderrs[key] = float(se_fn(vals)) if se_fn and agg_name == "mean" else None
    return TaskScore(
        task=check_config.get("task", ""), metric_key=metric_key, value=all_metrics.get(metric_key),
        stderr=stderrs.get(metric_key), n=len(items), n_target=len(target_ids) if target_ids is not None else len(items),
        all_metrics=all_metrics,
    )
