"""FastChat llm_judge file compatibility: answers and judgments in, answers and judgments out, show_result.

Formats (FastChat's fastchat/llm_judge/data/<bench>/ layout):
  model_answer/<name>.jsonl              {"question_id", "answer_id", "model_id", "choices": [{"index": 0,
                                          "turns": [turn1, turn2]}], "tstamp"}
  model_judgment/<judge>_single.jsonl    {"question_id", "model", "judge": [judge, prompt name], "user_prompt",
                                          "judgment", "score" (-1 = no rating), "turn", "tstamp"}
  model_judgment/<judge>_pair.jsonl      {"question_id", "model_1", "model_2", "g1_winner", "g2_winner"
                                          ("model_1" | "model_2" | "tie" | "error"), "judge", "g1_user_prompt",
                                          "g1_judgment", "g2_user_prompt", "g2_judgment", "turn", "tstamp"}
FastChat knows a model by its answer FILE's name (load_model_answers: the base name without ".jsonl"), not
by the records' model_id, and reads model_answer/*.jsonl without descending into folders. So imports name a
model after its file, and exports write one flat file per model: a name with "/" (org/model) is written as
org__model.jsonl (``fastchat_model_name``), the name FastChat will show; the rows' model_id and the judgment
rows' model fields use the same name, so the files stay consistent with each other.

``fastchat_show_result`` computes exactly what FastChat's show_result.py prints from such a file (its rules,
including dropping score -1 rows and "error" games, are reproduced and tested against FastChat's own code);
``mtbench_scores_from_fastchat`` gives mergeval's view of the same file (bootstrap CIs, unparsed counts; exact
duplicate rows are reported and counted once, with show_result's number beside when that changes it).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mergeval.core.identity import content_hash
from mergeval.engines.chat.judging import pair_item_id
from mergeval.engines.chat.prompts import JudgePrompts, pairwise_messages, single_messages
from mergeval.engines.chat.questions import Question, read_jsonl
from mergeval.engines.chat.scores import DEFAULT_N_BOOT, MTBenchScores, QuestionRatings, scores_from_ratings
from mergeval.errors import UserError
from mergeval.models import ModelRef

PathLike = str | os.PathLike
logger = logging.getLogger(__name__)


def fastchat_model_name(name: str) -> str:
    """The name FastChat will know a model by when mergeval writes it: `name` with "/" and "\\" as "__", so
    the answer file is model_answer/<that>.jsonl, flat (FastChat never reads subfolders)."""
    out = name.replace("/", "__").replace("\\", "__")
    if not out or out in (".", ".."):
        raise UserError(f"{name!r} cannot name a FastChat answer file; give another model name.")
    return out


def fastchat_name_of_file(path: PathLike) -> str:
    """FastChat's name of the model whose answers are in `path`: the file name without ".jsonl"."""
    name = Path(path).name
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else Path(path).stem


def fastchat_answer_files(path: PathLike) -> list[Path]:
    """The answer files at `path`: the file itself, or a folder's *.jsonl files (FastChat's model_answer/)."""
    source = Path(path)
    if source.is_dir():
        files = sorted(f for f in source.glob("*.jsonl") if f.is_file())
        if not files:
            raise UserError(f"{source} holds no .jsonl answer files; point at FastChat's model_answer/ folder or "
                            "at one answer file.")
        return files
    if not source.exists():
        raise UserError(f"FastChat answer file {source} does not exist. Check the path.")
    return [source]


def _sort_key(question_id: Any) -> tuple[int, Any]:
    return (0, question_id) if isinstance(question_id, int) else (1, str(question_id))


def _target(dest: PathLike, folder: str, file_name: str) -> Path:
    """`dest` itself when it names a .jsonl file, else dest/<folder>/<file_name> (FastChat's layout)."""
    path = Path(dest)
    if path.suffix == ".jsonl":
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    out = path / folder / file_name
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _rewrite_jsonl(path: Path, keep: Any, rows: list[dict[str, Any]]) -> None:
    """Write `rows` to `path`, keeping the existing lines for which keep(obj) is true (other models' rows)."""
    kept = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and keep(json.loads(line)):
                kept.append(line)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", encoding="utf-8") as fh:
        for line in kept:
            fh.write(line + "\n")
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


# -- answers ------------------------------------------------------------------------------------------------------


def write_fastchat_answers(answers: Mapping[str, Sequence[str]], questions: Sequence[Question], dest: PathLike, *,
                           model_id: str, fingerprint: str) -> Path:
    """Write `answers` (question item id -> turns) as FastChat's model_answer/<model_id>.jsonl, sorted by
    question id, with a deterministic answer_id (from `fingerprint`, the question and the answer).

    `model_id` must already be FastChat's name for the model (`fastchat_model_name`). `dest` ending in .jsonl
    is the file itself."""
    rows = []
    for question in sorted(questions, key=lambda q: _sort_key(q.question_id)):
        if question.item_id in answers:
            turns = list(answers[question.item_id])
            rows.append({
                "question_id": question.question_id,
                "answer_id": content_hash([fingerprint, question.item_id, turns], 22),
                "model_id": model_id,
                "choices": [{"index": 0, "turns": turns}],
                "tstamp": time.time(),
            })
    path = _target(dest, "model_answer", f"{model_id}.jsonl")
    _rewrite_jsonl(path, lambda obj: False, rows)
    return path


def answer_records(path: PathLike) -> dict[str, list[str]]:
    """question id -> the two answer turns of each record of a FastChat answer file (the last line wins)."""
    source = Path(path)
    records: dict[str, list[str]] = {}
    for number, obj in read_jsonl(source, "FastChat answer"):
        try:
            turns = obj["choices"][0]["turns"]
            qid = str(obj["question_id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise UserError(f"{source}, line {number}: not a FastChat answer record (question_id, "
                            "choices[0].turns).") from exc
        if not isinstance(turns, list) or len(turns) != 2 or not all(isinstance(t, str) for t in turns):
            raise UserError(f"{source}, line {number}: question {qid} needs two answer turns (strings).")
        records[qid] = list(turns)
    return records


def fastchat_answers_ref(path: PathLike, model_id: str | None = None, *,
                         records: dict[str, list[str]] | None = None) -> ModelRef:
    """The model a FastChat answer file defines (nothing is stored): named after the file (FastChat's rule)
    or `model_id`, fingerprinted by that name and the file's answers."""
    source = Path(path)
    records = answer_records(source) if records is None else records
    name = model_id or fastchat_name_of_file(source)
    content = sorted([qid, turns] for qid, turns in records.items())
    return ModelRef(reference=name, kind="imported", name=name,
                    fingerprint="imported-" + content_hash(["fastchat-answers", name, content], 24),
                    metadata={"answers_file": source.name, "answers_sha256": content_hash(content, 64)})


# -- judgments out -------------------------------------------------------------------------------------------------


def write_fastchat_single_judgments(items: Iterable[Any], questions: Sequence[Question],
                                    answers: Mapping[str, Sequence[str]], prompts: JudgePrompts, dest: PathLike, *,
                                    model: str, judge: str) -> Path:
    """Write single-grading rows (stored ItemRows of `questions`) as FastChat's
    model_judgment/<judge>_single.jsonl: one row per turn and repeat, score -1 when unparsed. Rows of other
    models already in the file are kept. `model` is FastChat's name of the model."""
    by_id = {q.item_id: q for q in questions}
    now = time.time()
    rows: list[dict[str, Any]] = []
    mine = sorted((it for it in items if it.item_id in by_id), key=lambda it: _sort_key(by_id[it.item_id].question_id))
    for item in mine:
        question = by_id[item.item_id]
        for turn in (1, 2):
            info = item.data["turns"][str(turn)]
            user_prompt = single_messages(prompts, question, tuple(answers[item.item_id]), turn)[-1]["content"]
            for rating, judgment in zip(info["ratings"], info["judgments"]):
                rows.append({
                    "question_id": question.question_id, "model": model, "judge": [judge, info["prompt"]],
                    "user_prompt": user_prompt, "judgment": judgment["text"],
                    "score": rating if rating is not None else -1, "turn": turn, "tstamp": now,
                    **({"reminder_judgment": judgment["reminder_text"]} if judgment["reminder_text"] else {}),
                })
    path = _target(dest, "model_judgment", f"{judge}_single.jsonl")
    _rewrite_jsonl(path, lambda obj: obj.get("model") != model, rows)
    return path


_WINNER_NAMES = {"model_a": "model_1", "model_b": "model_2", "tie": "tie", "error": "error"}


def write_fastchat_pair_judgments(items: Iterable[Any], questions: Sequence[Question],
                                  answers: tuple[Mapping[str, Sequence[str]], Mapping[str, Sequence[str]]],
                                  prompts: JudgePrompts, dest: PathLike, *, models: tuple[str, str],
                                  judge: str) -> Path:
    """Write A/B rows (stored ItemRows of model 1 against model 2) as FastChat's
    model_judgment/<judge>_pair.jsonl (`g1_winner` / `g2_winner` as model_1 / model_2 / tie / error). Rows of
    other pairs already in the file are kept. `models` and `answers` are (model 1's, model 2's)."""
    stored = {item.item_id: item for item in items}
    now = time.time()
    rows: list[dict[str, Any]] = []
    for question in sorted(questions, key=lambda q: _sort_key(q.question_id)):
        for turn in (1, 2):
            item = stored.get(pair_item_id(question, turn))
            if item is None:
                continue
            a, b = (tuple(side[question.item_id]) for side in answers)
            rows.append({
                "question_id": question.question_id, "model_1": models[0], "model_2": models[1],
                "g1_winner": _WINNER_NAMES[item.data["g1_winner"]], "g2_winner": _WINNER_NAMES[item.data["g2_winner"]],
                "judge": [judge, item.data["prompt"]],
                "g1_user_prompt": pairwise_messages(prompts, question, a, b, turn)[-1]["content"],
                "g1_judgment": item.data["g1"]["text"],
                "g2_user_prompt": pairwise_messages(prompts, question, b, a, turn)[-1]["content"],
                "g2_judgment": item.data["g2"]["text"],
                "turn": turn, "tstamp": now,
            })
    path = _target(dest, "model_judgment", f"{judge}_pair.jsonl")
    _rewrite_jsonl(path, lambda obj: (obj.get("model_1"), obj.get("model_2")) != models, rows)
    return path


# -- judgments in ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FastChatJudgments:
    kind: str  # "single" or "pair"
    rows: list[dict[str, Any]]
    source: str


_SINGLE_KEYS = ("question_id", "model", "score", "turn")
_PAIR_KEYS = ("question_id", "model_1", "model_2", "g1_winner", "g2_winner")


def import_fastchat_judgments(path: PathLike) -> FastChatJudgments:
    """Read a FastChat ``*_single.jsonl`` or ``*_pair.jsonl`` judgment file (kind detected from its rows)."""
    source = Path(path)
    rows = [obj for _, obj in read_jsonl(source, "FastChat judgment")]
    first = rows[0]
    kind = "single" if "score" in first else "pair" if "g1_winner" in first else None
    if kind is None:
        raise UserError(f"{source} is neither a single-grading (score) nor a pairwise (g1_winner) judgment file.")
    needed = _SINGLE_KEYS if kind == "single" else _PAIR_KEYS
    for number, row in enumerate(rows, start=1):
        missing = [k for k in needed if k not in row]
        if missing:
            raise UserError(f"{source}: judgment {number} lacks {', '.join(missing)} (a {kind} judgment file).")
    return FastChatJudgments(kind=kind, rows=rows, source=str(source))


def _as_judgments(source: PathLike | FastChatJudgments) -> FastChatJudgments:
    return source if isinstance(source, FastChatJudgments) else import_fastchat_judgments(source)


def fastchat_show_result(
    source: PathLike | FastChatJudgments,
    *,
    mode: str | None = None,
    baseline_model: str | None = "gpt-3.5-turbo",
    model_list: Sequence[str] | None = None,
    bench_name: str = "mt_bench",
) -> dict[str, dict[str, float]]:
    """What FastChat's show_result.py computes from a judgment file, as {model: {column: value}}.

    mode "single" (default for a single file): {"turn1", "turn2", "average"} per model, score -1 rows dropped,
    the average taken over all remaining rows of the model (turn2 / average only for bench "mt_bench").
    mode "pairwise-baseline" (default for a pair file; games without `baseline_model` are skipped and the
    baseline's own row removed) or "pairwise-all": {"win", "loss", "tie", "win_rate", "loss_rate",
    "win_rate_adjusted"} per model; games with an "error" in either order are dropped.
    """
    judgments = _as_judgments(source)
    mode = mode or ("single" if judgments.kind == "single" else "pairwise-baseline")
    if mode == "single":
        if judgments.kind != "single":
            raise UserError(f"{judgments.source} holds pairwise judgments; use mode 'pairwise-baseline' or 'pairwise-all'.")
        return _show_single(judgments.rows, model_list, bench_name)
    if mode not in ("pairwise-baseline", "pairwise-all"):
        raise UserError(f"Unknown show_result mode {mode!r}: use single, pairwise-baseline or pairwise-all.")
    if judgments.kind != "pair":
        raise UserError(f"{judgments.source} holds single-grading judgments; use mode 'single'.")
    return _show_pairwise(judgments.rows, None if mode == "pairwise-all" else baseline_model, model_list)


def _show_single(rows: list[dict[str, Any]], model_list: Sequence[str] | None,
                 bench_name: str) -> dict[str, dict[str, float]]:
    kept = [r for r in rows if r["score"] != -1 and r["score"] is not None]
    if model_list is not None:
        kept = [r for r in kept if r["model"] in model_list]
    result: dict[str, dict[str, float]] = {}
    for model in sorted({r["model"] for r in kept}):
        mine = [r for r in kept if r["model"] == model]
        columns = {"turn1": [r["score"] for r in mine if r["turn"] == 1]}
        if bench_name == "mt_bench":
            columns["turn2"] = [r["score"] for r in mine if r["turn"] == 2]
            columns["average"] = [r["score"] for r in mine]
        result[model] = {name: statistics.fmean(values) for name, values in columns.items() if values}
    return result


def _show_pairwise(rows: list[dict[str, Any]], baseline_model: str | None,
                   model_list: Sequence[str] | None) -> dict[str, dict[str, float]]:
    tallies: dict[str, dict[str, int]] = {}

    def add(model: str, win: int, loss: int, tie: int) -> None:
        tally = tallies.setdefault(model, {"win": 0, "loss": 0, "tie": 0})
        tally["win"] += win
        tally["loss"] += loss
        tally["tie"] += tie

    for row in rows:
        if row["g1_winner"] == "error" or row["g2_winner"] == "error":
            continue
        if model_list is not None and row["model_1"] not in model_list:
            continue
        if baseline_model is not None and baseline_model not in (row["model_1"], row["model_2"]):
            continue
        if row["g1_winner"] == "tie" or row["g1_winner"] != row["g2_winner"]:
            add(row["model_1"], 0, 0, 1)
            add(row["model_2"], 0, 0, 1)
        else:
            winner, loser = ((row["model_1"], row["model_2"]) if row["g1_winner"] == "model_1"
                             else (row["model_2"], row["model_1"]))
            add(winner, 1, 0, 0)
            add(loser, 0, 1, 0)
    if not tallies:
        # FastChat's show_result raises here (its DataFrame has no "model" column to group by).
        models = sorted({r["model_1"] for r in rows} | {r["model_2"] for r in rows})
        if baseline_model is not None and baseline_model not in models:
            raise UserError(
                f"No game in this judgment file involves the baseline model {baseline_model!r}; the models in it "
                f"are {', '.join(models)}. Pass one of them as the baseline (show_result's --baseline-model), or "
                "use mode pairwise-all."
            )
        raise UserError(
            "No game of this judgment file is left to count (every game has an \"error\" verdict"
            + (", involves no listed model" if model_list is not None else "")
            + f"); its models are {', '.join(models)}."
        )
    result = {}
    for model, t in sorted(tallies.items()):
        if baseline_model is not None and model == baseline_model:
            continue
        total = t["win"] + t["loss"] + t["tie"]
        result[model] = {**{k: float(v) for k, v in t.items()}, "win_rate": t["win"] / total,
                         "loss_rate": t["loss"] / total, "win_rate_adjusted": (t["win"] + 0.5 * t["tie"]) / total}
    return result


def mtbench_scores_from_fastchat(
    source: PathLike | FastChatJudgments, model: str, *, questions: Sequence[Question] | None = None,
    n_boot: int = DEFAULT_N_BOOT, seed: int = 0, alpha: float = 0.05,
) -> MTBenchScores:
    """mergeval's scores (bootstrap CIs, per category, unparsed counts) from a FastChat single judgment file.

    Score -1 rows are counted as unparsed. Categories come from `questions` when given ("unknown" otherwise).
    Rows of one (question, turn) with different judgments are repeated judgments (their spread is the judge's
    noise). A row that is an exact copy of another (same question, turn, judge, judgment text and score) is
    not: it is counted once, reported in `n_duplicate_rows` and `warnings`, and `fastchat` holds what
    FastChat's show_result prints for the file, which counts every row as it is.
    """
    judgments = _as_judgments(source)
    if judgments.kind != "single":
        raise UserError(f"{judgments.source} is not a single-grading judgment file.")
    categories = {q.item_id: q.category for q in questions or []}
    per_question: dict[str, dict[int, list[float | None]]] = {}
    judges = set()
    seen: set[str] = set()
    duplicates = 0
    for row in judgments.rows:
        if row["model"] != model:
            continue
        key = content_hash([row["question_id"], row["turn"], row.get("judge"), row.get("judgment"), row["score"]], 32)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        judges.add(next(iter(row.get("judge") or ("?",))))
        score = row["score"]
        rating = None if score is None or score == -1 else float(score)
        per_question.setdefault(str(row["question_id"]), {}).setdefault(int(row["turn"]), []).append(rating)
    if not per_question:
        raise UserError(f"{judgments.source} has no judgments of a model named {model!r}.")
    rows = [QuestionRatings(qid, categories.get(qid, "unknown"), ratings) for qid, ratings in per_question.items()]
    repeats = max(len(v) for ratings in per_question.values() for v in ratings.values())
    scores = scores_from_ratings(rows, model=model, judge="/".join(sorted(judges)), repeats=repeats,
                                 n_boot=n_boot, seed=seed, alpha=alpha)
    if not duplicates:
        return scores
    fastchat = _show_single(judgments.rows, [model], "mt_bench").get(model, {})
    ours = {"turn1": scores.turn1, "turn2": scores.turn2, "average": scores.average}
    differ = {k: v for k, v in fastchat.items() if ours.get(k) is None or ours[k].mean != v}
    message = (f"{judgments.source}: {duplicates} judgment row(s) of {model} are exact copies of another row "
               "(same question, turn, judge and judgment); each is counted once here")
    if differ:
        message += (", while FastChat's show_result counts every copy: it gives "
                    + ", ".join(f"{k} {v:.3f}" for k, v in fastchat.items()) + " where mergeval gives "
                    + ", ".join(f"{k} {ours[k].mean:.3f}" if ours.get(k) else f"{k} -" for k in fastchat))
    logger.warning(message)
    return replace(scores, n_duplicate_rows=duplicates, fastchat=fastchat, warnings=(message + ".",))
