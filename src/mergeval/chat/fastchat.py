"""FastChat llm_judge file compatibility: answers and judgments in, answers and judgments out, show_result.

Formats (FastChat's fastchat/llm_judge/data/<bench>/ layout):
  model_answer/<model_id>.jsonl          {"question_id", "answer_id", "model_id", "choices": [{"index": 0,
                                          "turns": [turn1, turn2]}], "tstamp"}
  model_judgment/<judge>_single.jsonl    {"question_id", "model", "judge": [judge, prompt name], "user_prompt",
                                          "judgment", "score" (-1 = no rating), "turn", "tstamp"}
  model_judgment/<judge>_pair.jsonl      {"question_id", "model_1", "model_2", "g1_winner", "g2_winner"
                                          ("model_1" | "model_2" | "tie" | "error"), "judge", "g1_user_prompt",
                                          "g1_judgment", "g2_user_prompt", "g2_judgment", "turn", "tstamp"}
``fastchat_show_result`` computes exactly what FastChat's show_result.py prints from such a file (its rules,
including dropping score -1 rows and "error" games, are reproduced and tested against FastChat's own code);
``mtbench_scores_from_fastchat`` gives mergeval's view of the same file (bootstrap CIs, unparsed counts).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergeval.chat._checks import stable_hash
from mergeval.chat.generation import GenerationConfig, _answer_item, answers_check, stored_answers
from mergeval.chat.judges import Judge
from mergeval.chat.judging import pair_check, pair_item_id, single_check
from mergeval.chat.prompts import JudgePrompts, load_judge_prompts, pairwise_messages, single_messages
from mergeval.chat.questions import Question, _read_jsonl
from mergeval.chat.scores import DEFAULT_N_BOOT, MTBenchScores, QuestionRatings, scores_from_ratings
from mergeval.errors import UserError
from mergeval.models import ModelRef
from mergeval.store import Store

PathLike = str | os.PathLike


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


def export_fastchat_answers(
    store: Store, ref: ModelRef, questions: Sequence[Question], dest: PathLike, *, model_id: str | None = None,
    generation: GenerationConfig | None = None,
) -> Path:
    """Write `ref`'s stored answers as FastChat's model_answer/<model_id>.jsonl (sorted by question id)."""
    model_id = model_id or ref.name
    answers = stored_answers(store, ref, questions, generation)
    if not answers:
        raise UserError(f"{ref.name} has no stored answers for these questions; generate them first.")
    rows = []
    for question in sorted(questions, key=lambda q: _sort_key(q.question_id)):
        if question.item_id in answers:
            turns = list(answers[question.item_id])
            rows.append({
                "question_id": question.question_id,
                "answer_id": stable_hash([ref.fingerprint, question.item_id, turns], 22),
                "model_id": model_id,
                "choices": [{"index": 0, "turns": turns}],
                "tstamp": time.time(),
            })
    path = _target(dest, "model_answer", f"{model_id}.jsonl")
    _rewrite_jsonl(path, lambda obj: False, rows)
    return path


def import_fastchat_answers(
    store: Store, path: PathLike, questions: Sequence[Question], *, ref: ModelRef | None = None,
    model_id: str | None = None, generation: GenerationConfig | None = None,
) -> ModelRef:
    """Store a FastChat answer file's answers (for the given questions) as a model's answers.

    Without `ref` the answers define the model: kind "imported", named after the file's model_id, with a
    fingerprint of the file's answers (importing the same file again is the same model). The answers are
    stored under the answers check of `generation`, i.e. as if produced with that config: pass the config
    they were really produced with when you know it.
    """
    source = Path(path)
    by_id = {q.item_id: q for q in questions}
    records = {}
    for number, obj in _read_jsonl(source, "FastChat answer"):
        try:
            turns = obj["choices"][0]["turns"]
            qid = str(obj["question_id"])
        except (KeyError, IndexError, TypeError) as exc:
            raise UserError(f"{source}, line {number}: not a FastChat answer record (question_id, "
                            "choices[0].turns).") from exc
        if qid in by_id:
            if len(turns) != 2 or not all(isinstance(t, str) for t in turns):
                raise UserError(f"{source}, line {number}: question {qid} needs two answer turns (strings).")
            records[qid] = (obj, turns)
            model_id = model_id or obj.get("model_id")
    if not records:
        raise UserError(f"{source} has no answers to any of the {len(by_id)} questions given; check the files.")
    model_id = model_id or source.stem
    if ref is None:
        content = sorted((qid, list(turns)) for qid, (_, turns) in records.items())
        ref = ModelRef(reference=str(source), kind="imported", name=model_id,
                       fingerprint="imported-" + stable_hash(content, 24))
    spec = answers_check(questions, generation)
    generation = generation or GenerationConfig()
    spec.register(store, ref)
    run_id = store.start_run(ref.fingerprint, spec.hash, {"backend": "imported", "imported_from": str(source),
                                                          "model_id": model_id})
    items = []
    for qid, (_, turns) in records.items():
        question = by_id[qid]
        item = _answer_item(question, generation.temperature_for(question.category), list(turns), [None, None],
                            [None, None])
        item.data["imported_from"] = source.name
        items.append(item)
    store.add_items(ref.fingerprint, spec.hash, run_id, items)
    store.finish_run(run_id, status="done")
    return ref


# -- judgments out -------------------------------------------------------------------------------------------------


def export_fastchat_judgments(
    store: Store, ref: ModelRef, questions: Sequence[Question], judge: Judge, dest: PathLike, *,
    opponent: ModelRef | None = None, generation: GenerationConfig | None = None,
    prompts: JudgePrompts | None = None, repeats: int = 1,
) -> Path:
    """Write stored judgments in FastChat's format: single grades, or A/B games when `opponent` is given.

    Rows of other models already in the file are kept (FastChat keeps all models of a judge in one file).
    Each repeat of a single grade is one row; a judgment without a rating is written with score -1.
    """
    prompts = prompts or load_judge_prompts()
    answers = stored_answers(store, ref, questions, generation)
    now = time.time()
    rows: list[dict[str, Any]] = []
    if opponent is None:
        spec = single_check(questions, judge, generation=generation, prompts=prompts, repeats=repeats)
        by_id = {q.item_id: q for q in questions}
        for item in sorted(store.items(ref.fingerprint, spec.hash, with_data=True),
                           key=lambda it: _sort_key(by_id[it.item_id].question_id) if it.item_id in by_id else (2, "")):
            if item.item_id not in by_id:
                continue
            question = by_id[item.item_id]
            for turn in (1, 2):
                info = item.data["turns"][str(turn)]
                user_prompt = single_messages(prompts, question, answers[item.item_id], turn)[-1]["content"]
                for rating, judgment in zip(info["ratings"], info["judgments"]):
                    rows.append({
                        "question_id": question.question_id, "model": ref.name, "judge": [judge.name, info["prompt"]],
                        "user_prompt": user_prompt, "judgment": judgment["text"],
                        "score": rating if rating is not None else -1, "turn": turn, "tstamp": now,
                        **({"reminder_judgment": judgment["reminder_text"]} if judgment["reminder_text"] else {}),
                    })
        path = _target(dest, "model_judgment", f"{judge.name}_single.jsonl")
        _rewrite_jsonl(path, lambda obj: obj.get("model") != ref.name, rows)
        return path

    spec = pair_check(questions, judge, opponent, generation=generation, prompts=prompts)
    opponent_answers = stored_answers(store, opponent, questions, generation)
    stored = {item.item_id: item for item in store.items(ref.fingerprint, spec.hash, with_data=True)}
    winner_names = {"model_a": "model_1", "model_b": "model_2", "tie": "tie", "error": "error"}
    for question in sorted(questions, key=lambda q: _sort_key(q.question_id)):
        for turn in (1, 2):
            item = stored.get(pair_item_id(question, turn))
            if item is None:
                continue
            a, b = answers[question.item_id], opponent_answers[question.item_id]
            rows.append({
                "question_id": question.question_id, "model_1": ref.name, "model_2": opponent.name,
                "g1_winner": winner_names[item.data["g1_winner"]], "g2_winner": winner_names[item.data["g2_winner"]],
                "judge": [judge.name, item.data["prompt"]],
                "g1_user_prompt": pairwise_messages(prompts, question, a, b, turn)[-1]["content"],
                "g1_judgment": item.data["g1"]["text"],
                "g2_user_prompt": pairwise_messages(prompts, question, b, a, turn)[-1]["content"],
                "g2_judgment": item.data["g2"]["text"],
                "turn": turn, "tstamp": now,
            })
    path = _target(dest, "model_judgment", f"{judge.name}_pair.jsonl")
    _rewrite_jsonl(path, lambda obj: (obj.get("model_1"), obj.get("model_2")) != (ref.name, opponent.name), rows)
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
    rows = [obj for _, obj in _read_jsonl(source, "FastChat judgment")]
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
    """
    judgments = _as_judgments(source)
    if judgments.kind != "single":
        raise UserError(f"{judgments.source} is not a single-grading judgment file.")
    categories = {q.item_id: q.category for q in questions or []}
    per_question: dict[str, dict[int, list[float | None]]] = {}
    judges = set()
    for row in judgments.rows:
        if row["model"] != model:
            continue
        judges.add(next(iter(row.get("judge") or ("?",))))
        score = row["score"]
        rating = None if score is None or score == -1 else float(score)
        per_question.setdefault(str(row["question_id"]), {}).setdefault(int(row["turn"]), []).append(rating)
    if not per_question:
        raise UserError(f"{judgments.source} has no judgments of a model named {model!r}.")
    rows = [QuestionRatings(qid, categories.get(qid, "unknown"), ratings) for qid, ratings in per_question.items()]
    repeats = max(len(v) for ratings in per_question.values() for v in ratings.values())
    return scores_from_ratings(rows, model=model, judge="/".join(sorted(judges)), repeats=repeats,
                               n_boot=n_boot, seed=seed, alpha=alpha)
