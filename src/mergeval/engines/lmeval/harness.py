"""The lm-eval engine: tasks loaded with their identity, models as lm-eval LMs, and the evaluation of given
documents of a task. It knows nothing of plans, stores or reports (the check `mergeval.checks.lmeval` and the
core runner decide what is missing and store what comes back).

How an evaluation stays identical to plain lm-eval while only some documents are computed:
  - lm-eval draws few-shot examples from one random stream per task, in document order, so the few-shot
    context of document i depends on the documents before it. `evaluate_docs` therefore builds the requests
    of documents 0..max(wanted) in order, exactly as a full lm-eval run does, and keeps only the wanted ones.
  - The wanted documents are then evaluated in small chunks through `lm_eval.evaluator.evaluate` itself (its
    filters, `process_results` and metric code), with the chunk's prebuilt requests handed to it; each chunk
    comes back as one list of scored documents (the runner stores it in one transaction).
  - Scores are aggregated from per-item results with the task's own aggregation functions (`aggregate_items`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import math
import os
import re
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from mergeval.core.identity import IdentityError, callable_identity, canonical, content_hash
from mergeval.core.progress import within_batch
from mergeval.dtypes import canonical_dtype
from mergeval.errors import UserError
from mergeval.models import ModelRef
from mergeval.suites import Benchmark, Suite
from mergeval.suites.leaderboard_v2 import TASK_AGGREGATIONS, check_prerequisites, gated_reason, hub_offline

log = logging.getLogger("mergeval")

DATA_DIR_ENV = "MERGEVAL_DATA_DIR"
FEWSHOT_SEED = 1234  # lm-eval's default fewshot_random_seed
CHECK_KIND = "lm-eval"  # the store's check kind of lm-eval tasks


def _quiet_lm_eval() -> None:
    for name in ("lm_eval", "lm-eval", "lm_eval.api.task", "lm_eval.evaluator", "lm_eval.models.huggingface"):
        logger = logging.getLogger(name)
        if logger.level < logging.ERROR and not logging.getLogger("mergeval").isEnabledFor(logging.INFO):
            logger.setLevel(logging.ERROR)


def lm_eval_version() -> str:
    return version("lm_eval")


# -- identity ----------------------------------------------------------------------------------------------


def check_hash_of(config: Mapping[str, Any]) -> str:
    """The store hash of an lm-eval check identity: `mergeval.core.identity.content_hash`, as for every check."""
    return content_hash(config)


def ascii_json_hash(value: Any) -> str:
    """sha256 of `canonical(value)` as JSON with sorted keys and ASCII escapes, 24 hex characters: how lm-eval
    identities were hashed before the core (identical to `content_hash` for ASCII text). It stays the
    definition of the `task_config_hash` value inside an identity, and finds rows stored under it."""
    return hashlib.sha256(json.dumps(canonical(value), sort_keys=True).encode()).hexdigest()[:24]


def _function_text(fn: Callable) -> Any:
    """A task config's top-level function as lm-eval's own `dump_config` writes it (its source text), so
    existing stores keep their hashes; by module + name + source hash where there is no source (lm-eval then
    writes `str(fn)`, an address)."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return callable_identity(fn)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")


def _holds_address(value: Any) -> bool:
    """Whether `json.dumps(value, default=str)` (how task configs were hashed before issue 10) would have
    written a memory address: a function object anywhere, or lm-eval's own `str(fn)` fallback."""
    if isinstance(value, dict):
        return any(_holds_address(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_address(v) for v in value)
    if isinstance(value, str):
        return _ADDRESS.search(value) is not None
    return callable(value)


def task_identity(task: Any, original: dict[str, Any]) -> dict[str, Any]:
    """The task as defined (prompts, metrics, filters, few-shot settings, generation settings), as content:
    what `task_config_hash` is the hash of. Not where its data was read from on this machine (hub or mirror,
    cache folder): `dataset_path` / `dataset_kwargs` are the YAML's own.

    Functions: top-level ones (`process_docs: !function utils.process_docs`) and metric functions as their
    source text, as lm-eval's `dump_config` writes them; nested ones (lm-eval copies the task's functions into
    `fewshot_config`, which `dump_config` leaves as function objects) by `core.identity.callable_identity`:
    module, qualified name and source hash, never `str(fn)`."""
    dumped = task.config.to_dict(keep_callable=True)
    for key, value in list(dumped.items()):
        if callable(value):
            dumped[key] = _function_text(value)
    for metric in dumped.get("metric_list") or []:
        if isinstance(metric, dict):
            for key, value in list(metric.items()):
                if callable(value):
                    metric[key] = _function_text(value)
    for location in ("dataset_path", "dataset_kwargs", "metadata"):
        dumped.pop(location, None)
    dumped["dataset_path"] = original.get("dataset_path")
    dumped["dataset_kwargs"] = original.get("dataset_kwargs")
    return canonical(dumped)


# -- tasks ---------------------------------------------------------------------------------------------------


@dataclass
class PreparedTask:
    """An lm-eval task loaded (data included) with its check identity. The identity's dtype is the one a
    model is really loaded in (`mergeval.dtypes.resolved_dtype`), so it is completed per model:
    `check_hash_for(dtype)`. `check_hash` / `check_config` are the identity for the dtype the task was
    loaded for (an explicit one; 'auto' only names models whose dtype cannot be told)."""

    name: str
    benchmark: Benchmark
    task: Any  # lm_eval.api.task.Task
    identity: dict[str, Any]  # the check config without its dtype
    metric_key: str  # "acc_norm,none"
    n_docs: int
    dataset_source: str
    dtype: str = "auto"
    legacy_address_hash: bool = False  # mergeval < this fix hashed this task with a memory address in it

    def check_config_for(self, dtype: str) -> dict[str, Any]:
        return {**self.identity, "dtype": dtype}

    def check_hash_for(self, dtype: str) -> str:
        return check_hash_of(self.check_config_for(dtype))

    @property
    def check_config(self) -> dict[str, Any]:
        return self.check_config_for(self.dtype)

    @property
    def check_hash(self) -> str:
        return self.check_hash_for(self.dtype)

    def target_ids(self, limit: float | None) -> list[int]:
        """The document ids a run with this limit covers: lm-eval's first-n semantics."""
        return list(range(target_count(self.n_docs, limit)))


def target_count(n_docs: int, limit: float | None) -> int:
    """How many documents (the first n) a limit covers: a count, or a fraction of the task, rounded up."""
    if limit is None:
        return n_docs
    n = math.ceil(n_docs * limit) if limit < 1.0 else int(limit)
    return min(n, n_docs)


def parse_limit(value: str | float | None) -> int | float | None:
    """`--limit`: a whole number of items per task, or a fraction in (0, 1)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"--limit {value!r} is not a number. Use a count (e.g. 50) or a fraction (e.g. 0.1).")
    if not math.isfinite(number):  # nan, inf, 1e400
        raise UserError(
            f"--limit {value!r} is not a finite number. Use a count (e.g. 50) or a fraction (e.g. 0.1)."
        )
    if number <= 0 or (number >= 1 and number != int(number)):
        raise UserError(f"--limit {value!r} must be a positive whole number or a fraction between 0 and 1.")
    return int(number) if number >= 1 else number


def data_dir_setting(data_dir: str | os.PathLike | None) -> Path | None:
    """The dataset mirror a run uses: `data_dir`, else $MERGEVAL_DATA_DIR (not checked)."""
    value = data_dir or os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    path = data_dir_setting(data_dir)
    if path is not None and not path.is_dir():
        raise UserError(f"Data dir {path} does not exist. Create it with `mergeval data pull --to {path}`.")
    return path


def _folder_state(folder: Path) -> tuple:
    return tuple(sorted((p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                        for p in folder.rglob("*") if p.is_file()))


@functools.lru_cache(maxsize=256)
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


@dataclass(frozen=True)
class TaskSource:
    """Where a suite's lm-eval tasks are defined and where their data is read: plain data, so a work unit
    can carry it to another process (`to_json` / `from_json`)."""

    suite: str  # the suite's name (for messages)
    task_paths: tuple[str, ...]  # folders lm-eval indexes: the suite's, then the user's include paths
    data_roots: tuple[str, ...]  # hub-layout data folders, tried in order: bundled data, then the mirror
    data_dir: str | None = None  # the mirror

    @classmethod
    def of(cls, suite: Suite, *, data_dir: Path | None = None, include_paths: Iterable[str] = ()) -> TaskSource:
        paths = [str(p) for p in suite.task_paths()] + [str(Path(p).resolve()) for p in include_paths]
        roots = [str(r) for r in (suite.bundled_data_root(), data_dir) if r is not None]
        return cls(suite.name, tuple(dict.fromkeys(paths)), tuple(roots), None if data_dir is None else str(data_dir))

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "task_paths": list(self.task_paths), "data_roots": list(self.data_roots),
                "data_dir": self.data_dir}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskSource:
        return cls(data["suite"], tuple(data["task_paths"]), tuple(data["data_roots"]), data.get("data_dir"))


_MANAGERS: dict[tuple[str, ...], Any] = {}


def _task_manager(paths: tuple[str, ...], *, refresh: bool = False):
    """lm-eval's TaskManager over exactly these folders (indexing all of lm-eval's tasks takes seconds);
    one per set of folders and process, built again when asked for a task it does not know (new YAML)."""
    from lm_eval.tasks import TaskManager

    if refresh or paths not in _MANAGERS:
        _MANAGERS[paths] = TaskManager(include_path=list(paths), include_defaults=False)
    return _MANAGERS[paths]


# Loaded tasks by content (task YAML incl. its functions' source, data location incl. the mirror's content
# digest, benchmark, chat setting): a run that asks for a task again (the next model, a worker, the next
# sweep candidate) gets the same loaded task instead of reading its dataset again.
_PREPARED: OrderedDict[str, PreparedTask] = OrderedDict()
_PREPARED_MAX = 512


def _prepared_key(name: str, cfg: Mapping[str, Any], benchmark: Benchmark, chat: bool) -> str | None:
    try:
        return content_hash({"task": name, "config": cfg, "benchmark": benchmark.model_dump(mode="json"),
                             "chat": chat})
    except IdentityError:  # something in the YAML without content: load it every time
        return None


class TaskLoader:
    """Loads the tasks of a suite (or of a TaskSource) with their dataset paths pointed at a local mirror when
    one holds the dataset."""

    def __init__(self, suite: Suite | TaskSource, *, data_dir: Path | None = None, include_paths: Iterable[str] = ()):
        source = suite if isinstance(suite, TaskSource) else TaskSource.of(suite, data_dir=data_dir,
                                                                              include_paths=include_paths)
        _quiet_lm_eval()
        for p in source.task_paths:
            if not Path(p).exists():
                raise UserError(f"Task folder {p} does not exist. Check --include-path.")
        self.source = source
        self.data_dir = Path(source.data_dir) if source.data_dir else None
        self.manager = _task_manager(source.task_paths)

    def _config(self, name: str) -> dict[str, Any]:
        from lm_eval.tasks._yaml_loader import load_yaml

        entry = self.manager.task_index.get(name)
        if entry is None:  # a task file written since the folders were indexed
            self.manager = _task_manager(self.source.task_paths, refresh=True)
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
        for root in self.source.data_roots:
            folder = Path(root) / hub_path
            if folder.is_dir():
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

    def load(self, name: str, benchmark: Benchmark, *, dtype: str = "auto",
             apply_chat_template: bool = False) -> PreparedTask:
        cfg, source = self.config_for(name, benchmark)
        key = _prepared_key(name, cfg, benchmark, apply_chat_template)
        prepared = _PREPARED.get(key) if key else None
        if prepared is None:
            prepared = self._prepare(name, benchmark, cfg, source, apply_chat_template)
            if key:
                _PREPARED[key] = prepared
                while len(_PREPARED) > _PREPARED_MAX:
                    _PREPARED.popitem(last=False)
        return replace(prepared, dtype=canonical_dtype(dtype))

    def _load_task(self, name: str, cfg: dict[str, Any]) -> Any:
        try:
            task = self.manager.load([cfg])["tasks"][name]
        except UserError:
            raise
        except Exception as exc:  # datasets / hub errors come in many types
            raise UserError(
                f"Could not load the data of task {name} ({type(exc).__name__}: {str(exc)[:300]}). "
                f"Without network access, pull the data first (`mergeval data pull --suite {self.source.suite} "
                f"--to DIR` on a machine with internet) and pass --data-dir DIR (or set {DATA_DIR_ENV}); "
                f"the mirror must hold {cfg.get('dataset_path')}."
            ) from exc
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=FEWSHOT_SEED)
        return task

    def _prepare(self, name: str, benchmark: Benchmark, cfg: dict[str, Any], source: str,
                 apply_chat_template: bool) -> PreparedTask:
        task = self._load_task(name, cfg)
        metric_key = benchmark.metric_key
        if benchmark.metric == "*":  # custom task: the first metric it defines, first filter
            metric = next(iter(task._metric_fn_list))
            filters = [f.name for f in getattr(task, "_filters", [])] or ["none"]
            metric_key = f"{metric},{filters[0]}"
        # Identity: the task as defined, as content (see `task_identity`); the dtype is added per model.
        identity = {
            "engine": CHECK_KIND,
            "task": name,
            "task_version": (task.config.metadata or {}).get("version") if task.config.metadata else None,
            "task_config_hash": ascii_json_hash(task_identity(task, self._config(name))),
            "num_fewshot": task.get_config("num_fewshot"),
            "fewshot_seed": FEWSHOT_SEED,
            "apply_chat_template": apply_chat_template,
            # The leaderboard's chat setting (lm-eval --apply_chat_template --fewshot_as_multiturn); absent when
            # off, so checks stored before the option existed keep their identity.
            **({"fewshot_as_multiturn": True} if apply_chat_template else {}),
            "aggregations": {m: _aggregation_name(fn) for m, fn in task.aggregation().items()},
            "higher_is_better": dict(task.higher_is_better()),
        }
        return PreparedTask(
            name=name, benchmark=benchmark, task=task, identity=identity, metric_key=metric_key,
            n_docs=len(task.eval_docs), dataset_source=source, legacy_address_hash=_holds_address(task.dump_config()),
        )


@functools.lru_cache(maxsize=64)
def loader_for(source: TaskSource) -> TaskLoader:
    """One TaskLoader per task source and process."""
    return TaskLoader(source)


def _aggregation_name(fn: Callable) -> str:
    from lm_eval.api.registry import AGGREGATION_REGISTRY

    for name, registered in AGGREGATION_REGISTRY.items():
        if registered is fn:
            return name
    return getattr(fn, "__name__", "mean")


def prepare_suite(suite: Suite, *, data_dir: Path | None, include_paths: Iterable[str] = (),
                  dtype: str = "auto", chat_template: bool = False,
                  not_evaluated: dict[str, str] | None = None) -> dict[str, PreparedTask]:
    """Load every task of the suite (data included). Missing packages or nltk data of a task's scoring code
    fail here, before any work. With a `not_evaluated` dict, a benchmark whose gated dataset is missing is
    recorded there with the reason instead of failing the run."""
    check_prerequisites(suite, data_dir)
    loader = loader_for(TaskSource.of(suite, data_dir=data_dir, include_paths=include_paths))
    prepared: dict[str, PreparedTask] = {}
    for b in suite.benchmarks:
        if b.gated_dataset and not_evaluated is not None:
            loaded = _load_gated(loader, b, dtype, chat_template)
            if isinstance(loaded, str):
                not_evaluated[b.name] = loaded
            else:
                prepared.update(loaded)
            continue
        for t in b.tasks:
            prepared[t] = loader.load(t, b, dtype=dtype, apply_chat_template=chat_template)
    return prepared


def _load_gated(loader: TaskLoader, bench: Benchmark, dtype: str, chat_template: bool
                ) -> dict[str, PreparedTask] | str:
    """The benchmark's tasks, or why it is not evaluated: with a data dir (or the hub offline) a dataset the
    mirror lacks is not tried on the hub at all; otherwise a failed hub load is the reason."""
    in_mirror = all(loader.config_for(t, bench)[1].startswith("mirror:") for t in bench.tasks)
    if not in_mirror and (loader.data_dir is not None or hub_offline()):
        return gated_reason(bench, loader.data_dir)
    try:
        return {t: loader.load(t, bench, dtype=dtype, apply_chat_template=chat_template) for t in bench.tasks}
    except UserError:
        if in_mirror:
            raise
        return gated_reason(bench, loader.data_dir)


@functools.lru_cache(maxsize=4096)
def declared_fewshot(task_paths: tuple[str, ...], task: str) -> int | None:
    """The `num_fewshot` a task's own YAML declares (None when it declares none, or the task or its YAML
    cannot be read): read without loading the task or its data."""
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        entry = _task_manager(tuple(p for p in task_paths if Path(p).exists())).task_index.get(task)
        if entry is None or entry.yaml_path is None:
            return None
        return load_yaml(entry.yaml_path, resolve_func=False).get("num_fewshot")
    except Exception:  # noqa: BLE001  an unreadable index or YAML: the caller falls back to the suite's count
        return None


# -- models as lm-eval LMs -----------------------------------------------------------------------------------


def _register_mergeval_hf() -> None:
    """Register the `mergeval-hf` backend with lm-eval (the scoring package imports torch and lm-eval's HFLM,
    so it is imported only when an LM is made)."""
    import mergeval.engines.lmeval.scoring  # noqa: F401


def default_backend() -> str:
    """`mergeval-hf` (prefix-sharing scorer) when it is installed, else lm-eval's plain `hf`."""
    try:
        _register_mergeval_hf()
        from lm_eval.api.registry import get_model

        get_model("mergeval-hf")
        return "mergeval-hf"
    except Exception:  # noqa: BLE001  not installed, or lm-eval without it: the plain backend
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
        _register_mergeval_hf()
    kwargs: dict[str, Any] = {
        "pretrained": ref.model_object if ref.model_object is not None else str(ref.path),
        "batch_size": ref.batch_size,
        "trust_remote_code": ref.trust_remote_code,
    }
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
    for method in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        fn = getattr(lm, method, None)
        if fn is not None and "disable_tqdm" in inspect.signature(fn).parameters:
            setattr(lm, method, functools.partial(fn, disable_tqdm=True))


def backend_stats(lm: Any) -> dict[str, Any]:
    """The backend's counters (mergeval-hf: requests, forward tokens, fallbacks), {} for plain lm-eval."""
    stats = getattr(lm, "stats", None)
    return dict(stats) if isinstance(stats, dict) else {}


# -- evaluating documents ------------------------------------------------------------------------------------


def chunk_size_for(task, batch_size: int) -> int:
    """Documents per `evaluate` call (and per store transaction: a killed run loses at most one chunk).
    Generation gets four batches' worth, so mergeval-hf's continuous batching has rows to refill its slots
    with while a long answer finishes, instead of decoding it alone at the end of every chunk."""
    if task.OUTPUT_TYPE == "generate_until":
        return max(batch_size * 4, 16)
    return max(batch_size * 2, 8)


def _instances_by_doc(task, max_doc: int, lm=None, chat: bool = False) -> dict[int, list]:
    """Build requests for documents 0..max_doc in order (the few-shot random stream of a full run); with
    `chat`, through the model's chat template with few-shot examples as turns, as lm-eval's
    `--apply_chat_template --fewshot_as_multiturn` does."""
    task.set_fewshot_seed(seed=FEWSHOT_SEED)
    chat_args = {}
    if chat:
        chat_args = {"apply_chat_template": True, "fewshot_as_multiturn": True,
                     "chat_template": lm.apply_chat_template, "tokenizer_name": getattr(lm, "tokenizer_name", "")}
    task.build_all_requests(limit=max_doc + 1, rank=0, world_size=1, **chat_args)
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


@dataclass(frozen=True)
class ScoredDoc:
    """One document's result: lm-eval's metrics by `metric,filter`, and what it logged (target, responses,
    filtered responses per filter, document and prompt hashes)."""

    doc_id: int
    metrics: dict[str, Any]
    data: dict[str, Any]


# The question and choice texts kept beside a result (for people reading the per-item view; never part of a
# hash or an identity): each cut at this many characters.
_TEXT_CHARS = 4000


def _cut_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _TEXT_CHARS else text[:_TEXT_CHARS] + "..."


def doc_text(task: Any, doc: Any) -> dict[str, Any]:
    """The zero-shot question text of a document and, for multiple choice, its choice texts, as the task
    defines them: {} when the task cannot say (the evaluation never fails on this)."""
    out: dict[str, Any] = {}
    try:
        question = task.doc_to_text(doc)
        if isinstance(question, str):
            out["question"] = _cut_text(question)
        if getattr(task, "OUTPUT_TYPE", None) == "multiple_choice":
            choices = task.doc_to_choice(doc)
            if isinstance(choices, (list, tuple)) and all(isinstance(c, str) for c in choices):
                out["choices"] = [_cut_text(c) for c in choices]
            if isinstance(question, int) and "choices" in out and 0 <= question < len(out["choices"]):
                out.pop("choices")  # e.g. Winogrande: the "question" indexes contexts, not a text
    except Exception as exc:  # noqa: BLE001  texts for reading only: a task that cannot give them stores none
        logging.getLogger(__name__).debug("no question text for a document: %s", exc)
        return {}
    return out


def _scored_doc(doc_id: int, samples: list[dict], text: dict[str, Any] | None = None) -> ScoredDoc:
    """Merge lm-eval's logged samples of one document (one per filter) into one result; `text`: the
    question (and choice) texts to keep beside it."""
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
    if text:
        data["text"] = text
    return ScoredDoc(doc_id, metrics, json.loads(json.dumps(data, default=str)))


class _CountingHook:
    """lm-eval's cache hook (`add_partial` per finished request, from HFLM and mergeval-hf alike), counting the
    chunk's finished requests for the progress display (`within_batch`) and passing everything on."""

    def __init__(self, inner: Any, items: int, requests: int):
        self.inner, self.items, self.requests, self.done = inner, items, requests, 0

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        self.inner.add_partial(attr, req, res)
        self.done += 1
        within_batch(self.items, self.done, self.requests)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _evaluate_chunk(lm: Any, prepared: PreparedTask, by_doc: dict[int, list], chunk: list[int]) -> list[ScoredDoc]:
    """lm-eval's own `evaluate` on the chunk's prebuilt requests (its filters, process_results, metrics)."""
    from lm_eval.evaluator import evaluate

    task = prepared.task
    instances = _fresh_chunk(prepared.name, by_doc, chunk)

    def _use_prebuilt(*args, **kwargs):
        task._instances = instances

    task.build_all_requests = _use_prebuilt
    hook = getattr(lm, "cache_hook", None)
    if hook is not None:  # every finished request passes through it: the progress bar moves per request
        lm.cache_hook = _CountingHook(hook, len(chunk), len(instances))
    try:
        out = evaluate(lm=lm, task_dict={"tasks": {prepared.name: task}, "groups": {}, "group_map": {}},
                       samples={prepared.name: chunk}, bootstrap_iters=0, log_samples=True)
    finally:
        del task.build_all_requests
        if hook is not None:
            lm.cache_hook = hook
    per_doc: dict[int, list[dict]] = defaultdict(list)
    for sample in out["samples"][prepared.name]:
        per_doc[int(sample["doc_id"])].append(sample)
    docs = {inst.metadata[1]: inst.doc for inst in instances}  # position in the chunk -> document
    return [_scored_doc(d, per_doc[d], doc_text(task, docs.get(pos))) for pos, d in enumerate(chunk)]


def evaluate_docs(lm: Any, prepared: PreparedTask, doc_ids: Sequence[int], *, chunk_size: int,
                  chat: bool = False) -> Iterator[list[ScoredDoc]]:
    """Evaluate documents `doc_ids` (ascending) of a prepared task with `lm`, yielding each chunk of at most
    `chunk_size` documents as it is done. Few-shot contexts are those of a full run (documents 0..max built
    in order); `chat`: prompts through the model's chat template, few-shot examples as turns."""
    if not doc_ids:
        return
    by_doc = _instances_by_doc(prepared.task, max(doc_ids), lm, chat)
    size = max(1, chunk_size)
    for start in range(0, len(doc_ids), size):
        yield _evaluate_chunk(lm, prepared, by_doc, list(doc_ids[start: start + size]))


def expected_items(prepared: PreparedTask, max_doc: int) -> dict[str, tuple[Any, Any, Any]]:
    """doc id -> (doc_hash, prompt_hash, target) of documents 0..max_doc as the task builds them now (no
    model), computed exactly as lm-eval logs them: what identifies a stored item as this task's item."""
    from lm_eval.utils import handle_non_serializable, hash_string

    task = prepared.task
    expected = {}
    for doc_id, instances in _instances_by_doc(task, max_doc).items():
        first = min(instances, key=lambda inst: inst.idx)
        doc_hash = hash_string(json.dumps(first.doc, indent=2, default=handle_non_serializable, ensure_ascii=False))
        target = json.loads(json.dumps(task.doc_to_target(first.doc), default=str))
        expected[str(doc_id)] = (doc_hash, hash_string(first.arguments[0]), target)
    return expected


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


def _aggregation(name: str) -> Callable | None:
    from lm_eval.api.registry import get_aggregation

    try:
        fn = get_aggregation(name)
    except Exception:  # noqa: BLE001  lm-eval raises or warns for unknown names, depending on the version
        fn = None
    # an aggregation defined in a task's utils.py (IFEval's instruction-level accuracy): the same arithmetic
    return fn if fn is not None else TASK_AGGREGATIONS.get(name)


def aggregate_items(items: Iterable[Any], check_config: Mapping[str, Any], metric_key: str,
                    target_ids: set[str] | None = None) -> TaskScore:
    """The task's score from per-item results (objects with `item_id` and `metrics`, such as stored rows),
    with lm-eval's own aggregation and stderr functions."""
    from lm_eval.api.metrics import stderr_for_metric

    items = [it for it in items if target_ids is None or it.item_id in target_ids]
    items.sort(key=lambda it: int(it.item_id) if it.item_id.isdigit() else it.item_id)
    values: dict[str, list] = defaultdict(list)
    for it in items:
        for key, v in it.metrics.items():
            values[key].append(v)
    all_metrics: dict[str, float] = {}
    stderrs: dict[str, float | None] = {}
    for key, vals in values.items():
        metric = key.split(",")[0]
        agg_name = check_config.get("aggregations", {}).get(metric, "mean")
        fn = _aggregation(agg_name)
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


# -- progress callbacks of the check types not yet on the core runner ------------------------------------------


@dataclass
class TaskProgress:
    """Callbacks (start(model, task, total), advance(n), done()): the progress protocol before
    `mergeval.core.progress`; kept while other engines still take it."""

    start: Callable[[str, str, int], None] = lambda model, task, total: None
    advance: Callable[[int], None] = lambda n: None
    done: Callable[[], None] = lambda: None
