"""MT-Bench questions and reference answers, in FastChat's file formats.

A question file is JSON Lines, one question per line: ``{"question_id": 81, "category": "writing",
"turns": ["first user message", "second user message"]}``, optionally with ``"reference": [ref1, ref2]``
(FastChat's own question files carry short references that way). Reference answers also come as a separate
FastChat *answer* file (``reference_answer/gpt-4.jsonl``: ``{"question_id": .., "choices": [{"turns": [..]}]}``);
when one is given it takes precedence over the embedded references, exactly as FastChat's gen_judgment uses
only that file.

Every loaded question carries two identities that the results store keys on:
  ``set_id``            the hash of the whole question file, so a subset of a file (``questions[:3]``) shares
                        stored answers with the full file, and an edited file never reuses stale answers;
  ``reference_source``  where the set's reference answers came from: "embedded" (the question file itself,
                        already identified by ``set_id``) or the hash of a separate reference file. It is the
                        same for every question of a load, so subsets share judging checks too; it is part
                        of a judging check but not of an answers check.

mergeval bundles its own small question set (``data/question.jsonl``: 3 questions in each of the 8 MT-Bench
categories, with references for math, reasoning and coding) so that everything works offline. Scores on it
are NOT comparable with published MT-Bench numbers; use the official file for that (``pull_official_files``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mergeval.errors import UserError

DATA_DIR = Path(__file__).parent / "data"
BUNDLED_QUESTIONS = DATA_DIR / "question.jsonl"
BUNDLED_SET_NAME = "mergeval-v1"

CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
# Categories whose answers are judged against a reference answer (FastChat's NEED_REF_CATS).
REFERENCE_CATEGORIES = frozenset({"math", "reasoning", "coding"})

# Where the official MT-Bench files live on the Hugging Face hub: LMSYS's MT-Bench space, the same place
# FastChat's download_mt_bench_pregenerated.py fetches from. (repo_type "space".)
OFFICIAL_REPO_ID = "lmsys/mt-bench"
OFFICIAL_REPO_TYPE = "space"
OFFICIAL_FILES = {
    "question.jsonl": "data/mt_bench/question.jsonl",
    "reference_answer/gpt-4.jsonl": "data/mt_bench/reference_answer/gpt-4.jsonl",
    "judge_prompts.jsonl": "data/judge_prompts.jsonl",
}
REQUIRED_OFFICIAL_FILES = ("question.jsonl",)


@dataclass(frozen=True)
class Question:
    """One two-turn MT-Bench question."""

    question_id: int | str
    category: str
    turns: tuple[str, ...]
    reference: tuple[str, ...] | None = None  # reference answers, one per turn (math / reasoning / coding)
    set_id: str = ""  # identity of the question file this question came from
    reference_source: str = "embedded"  # "embedded" (from the question file) or "file:<hash>" / "mapping:<hash>"

    @property
    def item_id(self) -> str:
        """The store's item id for this question."""
        return str(self.question_id)

    @property
    def needs_reference(self) -> bool:
        return self.category in REFERENCE_CATEGORIES

    def content_hash(self) -> str:
        """Hash of what the model is asked (not the references): stored with each answer."""
        return _hash_json({"category": self.category, "turns": list(self.turns)})

    def to_dict(self) -> dict[str, Any]:
        """Everything the question is, as JSON data (work units carry their questions to other processes)."""
        return {"question_id": self.question_id, "category": self.category, "turns": list(self.turns),
                "reference": None if self.reference is None else list(self.reference), "set_id": self.set_id,
                "reference_source": self.reference_source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Question:
        reference = data.get("reference")
        return cls(question_id=data["question_id"], category=data["category"], turns=tuple(data["turns"]),
                   reference=None if reference is None else tuple(reference), set_id=data.get("set_id", ""),
                   reference_source=data.get("reference_source", "embedded"))

    def to_fastchat(self) -> dict[str, Any]:
        out: dict[str, Any] = {"question_id": self.question_id, "category": self.category, "turns": list(self.turns)}
        if self.reference is not None:
            out["reference"] = list(self.reference)
        return out


def _hash_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _hash_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def read_jsonl(path: Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a UserError names the bad line."""
    if not path.exists():
        raise UserError(f"{what} file {path} does not exist. Check the path.")
    if path.is_dir():
        raise UserError(f"{path} is a folder; pass the {what} .jsonl file itself.")
    rows = []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{path}, line {line}: not valid UTF-8 text (byte {exc.start}). A {what} file must be UTF-8 JSON "
            "Lines; save it as UTF-8."
        ) from None
    except OSError as exc:
        raise UserError(f"Cannot read the {what} file {path}: {exc.strerror or exc}.") from None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{path}, line {number}: not valid JSON ({exc.msg}). Each line of a {what} file must be one "
                "JSON object (FastChat's JSON Lines format)."
            ) from exc
        if not isinstance(obj, dict):
            raise UserError(f"{path}, line {number}: expected a JSON object, found {type(obj).__name__}.")
        rows.append((number, obj))
    if not rows:
        raise UserError(f"{what} file {path} is empty.")
    return rows


def _question_from(obj: Mapping[str, Any], where: str, set_id: str) -> Question:
    missing = [key for key in ("question_id", "category", "turns") if key not in obj]
    if missing:
        raise UserError(
            f"{where}: missing {', '.join(missing)}. A question needs question_id, category and turns "
            "(a list of two user messages), as in FastChat's question.jsonl."
        )
    turns = obj["turns"]
    if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
        raise UserError(f"{where}: 'turns' must be a list of strings (the user's messages).")
    if len(turns) != 2:
        raise UserError(
            f"{where}: question {obj['question_id']} has {len(turns)} turns; MT-Bench questions have exactly 2."
        )
    reference = obj.get("reference")
    if reference is not None:
        if not isinstance(reference, list) or not all(isinstance(t, str) for t in reference):
            raise UserError(f"{where}: 'reference' must be a list of strings, one per turn.")
        reference = tuple(reference)
    qid = obj["question_id"]
    if not isinstance(qid, (int, str)) or isinstance(qid, bool):
        raise UserError(f"{where}: question_id must be an integer or a string, not {qid!r}.")
    return Question(
        question_id=qid, category=str(obj["category"]), turns=tuple(turns), reference=reference,
        set_id=set_id,
    )


def load_questions(
    path: str | os.PathLike | None = None, *, reference_answers: str | os.PathLike | None = None
) -> list[Question]:
    """Load a FastChat question file, or mergeval's bundled set when `path` is None.

    `reference_answers` (a FastChat answer file, or a ``reference_answer/`` folder holding exactly one) replaces
    the questions' embedded references.
    """
    source = Path(path) if path is not None else BUNDLED_QUESTIONS
    name = BUNDLED_SET_NAME if path is None else source.stem
    set_id = f"{name}:{_hash_file(source)}" if source.is_file() else ""
    questions = []
    seen: set[str] = set()
    for number, obj in read_jsonl(source, "question"):
        question = _question_from(obj, f"{source}, line {number}", set_id)
        if question.item_id in seen:
            raise UserError(f"{source}, line {number}: question_id {question.question_id} appears twice.")
        seen.add(question.item_id)
        questions.append(question)
    if reference_answers is not None:
        questions = with_references(questions, reference_answers)
    return questions


def load_reference_answers(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """Reference answers from a FastChat answer file (or a folder with one .jsonl): question id -> turns."""
    source = Path(path)
    if source.is_dir():
        files = sorted(source.glob("*.jsonl"))
        if len(files) != 1:
            raise UserError(
                f"{source} holds {len(files)} .jsonl files; pass the reference answer file itself "
                "(e.g. reference_answer/gpt-4.jsonl)."
            )
        source = files[0]
    references: dict[str, tuple[str, ...]] = {}
    for number, obj in read_jsonl(source, "reference answer"):
        try:
            turns = obj["choices"][0]["turns"]
            qid = obj["question_id"]
        except (KeyError, IndexError, TypeError) as exc:
            raise UserError(
                f"{source}, line {number}: not a FastChat answer record (needs question_id and "
                "choices[0].turns)."
            ) from exc
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise UserError(f"{source}, line {number}: choices[0].turns must be a list of strings.")
        references[str(qid)] = tuple(turns)
    return references


def with_references(
    questions: Sequence[Question], reference_answers: str | os.PathLike | Mapping[str, Sequence[str]]
) -> list[Question]:
    """Attach reference answers (a file/folder path or a mapping question id -> turns) to `questions`.

    Questions the references do not cover keep their embedded reference, if any. Every question gets the
    same `reference_source`, so the judging checks of any subset of the questions are the same.
    """
    if isinstance(reference_answers, Mapping):
        refs = {str(k): tuple(v) for k, v in reference_answers.items()}
        source = "mapping:" + _hash_json(sorted((k, list(v)) for k, v in refs.items()))
    else:
        path = Path(reference_answers)
        refs = load_reference_answers(path)
        file = path if path.is_file() else min(path.glob("*.jsonl"))
        source = "file:" + _hash_file(file)
    return [replace(q, reference=refs.get(q.item_id, q.reference), reference_source=source) for q in questions]


def check_question_set(questions: Sequence[Question]) -> str:
    """The single set id shared by `questions`; a UserError if they are empty or mixed from several files."""
    if not questions:
        raise UserError("No questions to evaluate. Pass a question file with at least one question.")
    set_ids = {q.set_id for q in questions}
    if len(set_ids) != 1 or "" in set_ids:
        raise UserError(
            "The questions come from several question files (or were built by hand without a set id). Evaluate "
            "one question file at a time, loaded with load_questions()."
        )
    ids = [q.item_id for q in questions]
    if len(set(ids)) != len(ids):
        raise UserError("The same question id is listed twice; pass each question once.")
    return next(iter(set_ids))


def reference_source_of(questions: Iterable[Question]) -> str:
    """Where the questions' reference answers came from (part of judging checks)."""
    sources = sorted({q.reference_source for q in questions})
    if len(sources) != 1:
        raise UserError(
            "The questions carry reference answers from different sources. Load them in one call "
            "(load_questions(path, reference_answers=...)) so they share one set of references."
        )
    return sources[0]


def pull_official_files(
    dest: str | os.PathLike, *, repo_id: str = OFFICIAL_REPO_ID, repo_type: str = OFFICIAL_REPO_TYPE,
    revision: str | None = None,
) -> dict[str, Path]:
    """Download the official MT-Bench files from the Hugging Face hub into `dest` (FastChat's layout).

    Returns {relative name: local path} for the files that were fetched. ``question.jsonl`` is required; the
    reference answers and judge prompts are fetched when the hub repository has them (a missing optional file
    is left out of the result, not an error). Without a connection this fails at once with a UserError.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    target = Path(dest)
    fetched: dict[str, Path] = {}
    for local_name, hub_name in OFFICIAL_FILES.items():
        try:
            cached = hf_hub_download(repo_id, hub_name, repo_type=repo_type, revision=revision)
        except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
            # (checked first: LocalEntryNotFoundError also subclasses EntryNotFoundError)
            raise UserError(_offline_message(hub_name, repo_id, repo_type, exc)) from exc
        except RepositoryNotFoundError as exc:
            raise UserError(f"The hub repository {repo_id} ({repo_type}) does not exist or is private.") from exc
        except EntryNotFoundError:
            if local_name in REQUIRED_OFFICIAL_FILES:
                raise UserError(
                    f"The hub repository {repo_id} has no {hub_name}; pass --questions PATH to a local copy of "
                    "FastChat's question.jsonl instead."
                ) from None
            continue
        except (HfHubHTTPError, OSError) as exc:
            raise UserError(_offline_message(hub_name, repo_id, repo_type, exc)) from exc
        out = target / local_name
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, out)
        fetched[local_name] = out
    return fetched


def _offline_message(hub_name: str, repo_id: str, repo_type: str, exc: Exception) -> str:
    return (
        f"Could not download {hub_name} from the Hugging Face hub ({repo_type} {repo_id}): {type(exc).__name__}. "
        "This machine looks offline (or HF_HUB_OFFLINE=1 is set). Copy FastChat's "
        "fastchat/llm_judge/data/mt_bench/question.jsonl (and reference_answer/gpt-4.jsonl, judge_prompts.jsonl) "
        "here by hand and pass --questions / --reference-answers / --judge-prompts."
    )
