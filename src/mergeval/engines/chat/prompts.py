"""Judge prompts: which prompt judges which question and turn, and how it is filled in.

The prompt file format is FastChat's ``judge_prompts.jsonl``: one JSON object per prompt with ``name``,
``type`` ("single" or "pairwise"), ``system_prompt``, ``prompt_template`` (a ``str.format`` template) and
``output_format``. mergeval bundles prompts it wrote itself (``data/judge_prompts.jsonl``) under FastChat's
eight names, so ``--judge-prompts judge_prompts.jsonl`` swaps in FastChat's wording unchanged; use that for
numbers comparable with published MT-Bench scores.

Which prompt is used (as FastChat's gen_judgment does it):

==========================  ========================  =============================
                            turn 1                    turn 2 (whole conversation)
==========================  ========================  =============================
single, general category    single-v1                 single-v1-multi-turn
single, math/reasoning/code single-math-v1            single-math-v1-multi-turn
pairwise, general           pair-v2                   pair-v2-multi-turn
pairwise, math/reasoning/.. pair-math-v1              pair-math-v1-multi-turn
==========================  ========================  =============================
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mergeval.engines.chat.questions import DATA_DIR, Question, read_jsonl
from mergeval.errors import UserError

BUNDLED_PROMPTS = DATA_DIR / "judge_prompts.jsonl"

Messages = list[dict[str, str]]

# name -> (type, placeholders the template must use)
_REQUIRED: dict[str, tuple[str, frozenset[str]]] = {
    "single-v1": ("single", frozenset({"question", "answer"})),
    "single-math-v1": ("single", frozenset({"question", "answer", "ref_answer_1"})),
    "single-v1-multi-turn": ("single", frozenset({"question_1", "answer_1", "question_2", "answer_2"})),
    "single-math-v1-multi-turn": (
        "single", frozenset({"question_1", "answer_1", "question_2", "answer_2", "ref_answer_1", "ref_answer_2"})),
    "pair-v2": ("pairwise", frozenset({"question", "answer_a", "answer_b"})),
    "pair-math-v1": ("pairwise", frozenset({"question", "answer_a", "answer_b", "ref_answer_1"})),
    "pair-v2-multi-turn": (
        "pairwise", frozenset({"question_1", "question_2", "answer_a_1", "answer_a_2", "answer_b_1", "answer_b_2"})),
    "pair-math-v1-multi-turn": (
        "pairwise", frozenset({"question_1", "question_2", "answer_a_1", "answer_a_2", "answer_b_1", "answer_b_2",
                               "ref_answer_1", "ref_answer_2"})),
}

# Sent after a judgment that had no rating/verdict: one more chance, then it is recorded as unparsed.
RATING_REMINDER = (
    "Your reply did not contain a rating in the required format. Reply with your rating only, written as "
    "[[N]] with N a whole number from 1 to 10, for example [[6]]."
)
VERDICT_REMINDER = (
    "Your reply did not contain a verdict in the required format. Reply with your verdict only: [[A]] if "
    "assistant A is better, [[B]] if assistant B is better, or [[C]] for a tie."
)


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    type: str
    system_prompt: str
    prompt_template: str
    output_format: str

    def render(self, **fields: str) -> Messages:
        """The chat messages for the judge: system prompt (if any) + the filled-in user prompt."""
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": self.prompt_template.format(**fields)})
        return messages


@dataclass(frozen=True)
class JudgePrompts:
    """A complete set of the eight prompts, with the hash that identifies it in checks."""

    prompts: Mapping[str, JudgePrompt]
    source: str  # "bundled" or the file name
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The prompt set as JSON data (work units carry it to other processes)."""
        return {"source": self.source, "hash": self.hash,
                "prompts": {name: asdict(prompt) for name, prompt in sorted(self.prompts.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JudgePrompts:
        prompts = {name: JudgePrompt(**fields) for name, fields in data["prompts"].items()}
        return cls(prompts=prompts, source=data["source"], hash=data["hash"])

    def __getitem__(self, name: str) -> JudgePrompt:
        return self.prompts[name]

    def single(self, question: Question, turn: int) -> JudgePrompt:
        base = "single-math-v1" if question.needs_reference else "single-v1"
        return self.prompts[base + ("-multi-turn" if turn == 2 else "")]

    def pairwise(self, question: Question, turn: int) -> JudgePrompt:
        base = "pair-math-v1" if question.needs_reference else "pair-v2"
        return self.prompts[base + ("-multi-turn" if turn == 2 else "")]


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def load_judge_prompts(path: str | os.PathLike | None = None) -> JudgePrompts:
    """Load a FastChat-format judge prompt file, or mergeval's own prompts when `path` is None."""
    source = Path(path) if path is not None else BUNDLED_PROMPTS
    found: dict[str, JudgePrompt] = {}
    for number, obj in read_jsonl(source, "judge prompt"):
        name = obj.get("name")
        if name not in _REQUIRED:
            continue  # FastChat's file may hold prompts mergeval does not use; they do not change the hash
        kind, needed = _REQUIRED[name]
        where = f"{source}, line {number} ({name})"
        for key in ("system_prompt", "prompt_template"):
            if not isinstance(obj.get(key), str):
                raise UserError(f"{where}: '{key}' must be a string.")
        if obj.get("type") != kind:
            raise UserError(f"{where}: type must be {kind!r}, found {obj.get('type')!r}.")
        try:
            used = _placeholders(obj["prompt_template"])
        except ValueError as exc:
            raise UserError(f"{where}: the prompt_template is not a valid format string ({exc}).") from exc
        if not needed <= used:
            raise UserError(
                f"{where}: the prompt_template lacks the placeholder(s) {', '.join(sorted(needed - used))}."
            )
        if used - needed:
            raise UserError(
                f"{where}: the prompt_template uses unknown placeholder(s) {', '.join(sorted(used - needed))}; "
                f"allowed: {', '.join(sorted(needed))}. Write literal braces as {{{{ and }}}}."
            )
        found[name] = JudgePrompt(name, kind, obj["system_prompt"], obj["prompt_template"],
                                  str(obj.get("output_format", "")))
    missing = sorted(set(_REQUIRED) - set(found))
    if missing:
        raise UserError(
            f"Judge prompt file {source} lacks the prompt(s) {', '.join(missing)}. It needs all eight of FastChat's "
            "judge prompts (single-v1, single-math-v1, their -multi-turn forms, pair-v2, pair-math-v1 and theirs)."
        )
    canonical = json.dumps({n: _prompt_fields(p) for n, p in sorted(found.items())}, sort_keys=True)
    return JudgePrompts(
        prompts=found,
        source="bundled" if path is None else source.name,
        hash=hashlib.sha256(canonical.encode()).hexdigest()[:16],
    )


def _prompt_fields(prompt: JudgePrompt) -> dict[str, Any]:
    return {"system_prompt": prompt.system_prompt, "prompt_template": prompt.prompt_template}


def _references(question: Question) -> dict[str, str]:
    if not question.needs_reference:
        return {}
    if question.reference is None or len(question.reference) < 2:
        raise UserError(
            f"Question {question.question_id} ({question.category}) is judged against a reference answer but has "
            "none. Pass the reference answers (--reference-answers reference_answer/gpt-4.jsonl)."
        )
    return {"ref_answer_1": question.reference[0], "ref_answer_2": question.reference[1]}


def single_messages(prompts: JudgePrompts, question: Question, answers: tuple[str, str], turn: int) -> Messages:
    """Messages asking the judge to rate `answers[turn - 1]`; turn 2 shows the whole conversation."""
    prompt = prompts.single(question, turn)
    fields = _references(question)
    if turn == 1:
        fields.update(question=question.turns[0], answer=answers[0])
    else:
        fields.update(question_1=question.turns[0], answer_1=answers[0],
                      question_2=question.turns[1], answer_2=answers[1])
    return prompt.render(**fields)


def pairwise_messages(
    prompts: JudgePrompts, question: Question, answers_a: tuple[str, str], answers_b: tuple[str, str], turn: int
) -> Messages:
    """Messages asking the judge to compare assistant A's and B's answers to `turn`."""
    prompt = prompts.pairwise(question, turn)
    fields = _references(question)
    if turn == 1:
        fields.update(question=question.turns[0], answer_a=answers_a[0], answer_b=answers_b[0])
    else:
        fields.update(question_1=question.turns[0], question_2=question.turns[1],
                      answer_a_1=answers_a[0], answer_a_2=answers_a[1],
                      answer_b_1=answers_b[0], answer_b_2=answers_b[1])
    return prompt.render(**fields)


def check_references(questions: list[Question]) -> None:
    """Fail before any judge call if a reference-guided question has no reference answer."""
    lacking = [q for q in questions if q.needs_reference and (q.reference is None or len(q.reference) < 2)]
    if lacking:
        ids = ", ".join(str(q.question_id) for q in lacking[:10]) + (" ..." if len(lacking) > 10 else "")
        raise UserError(
            f"{len(lacking)} math/reasoning/coding question(s) have no reference answer (ids {ids}); they are "
            "judged against one. Pass --reference-answers reference_answer/gpt-4.jsonl, or leave them out."
        )
