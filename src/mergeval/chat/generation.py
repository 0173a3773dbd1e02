"""Answer generation: every question's two turns, stored question by question so a run can resume.

As MT-Bench does it: turn 2 is asked after the model's *own* turn-1 answer; each category has its sampling
temperature (writing and roleplay 0.7, stem and humanities 0.1, the rest greedy); at most `max_new_tokens`
per turn (FastChat's default is 1024).

Unlike FastChat's gen_model_answer, which runs ``model.generate`` on one prompt at a time, local models
answer *batches* of questions: the questions are grouped by temperature, sorted by prompt length (less
padding), left-padded, and each batch's turn 1 and then turn 2 are generated together. Sampled categories
are seeded per batch, so a run is reproducible for the same question set, batch size and seed (batches
change when a run resumes halfway: the resumed sampled answers are then different draws). Greedy answers do
not depend on batching except for rare floating-point ties (bench/RESULTS_chat.md measures how rare).

Models served elsewhere (``openai:<model>@<base_url>``: vLLM, a hosted API, ``transformers serve``) are asked
through the official `openai` client, several questions at a time.
"""

from __future__ import annotations

import time
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mergeval.chat._checks import ANSWERS_KIND, CheckSpec, set_name, stable_hash
from mergeval.chat._endpoint import ChatEndpoint, EndpointUnavailable, endpoint_host
from mergeval.chat._local import LocalChatModel
from mergeval.chat._pool import run_bounded
from mergeval.chat.progress import NullProgress, Progress
from mergeval.chat.questions import Question, check_question_set
from mergeval.errors import UserError
from mergeval.models import ModelRef, chat_template_hash
from mergeval.store import ItemRow, Store

# MT-Bench's sampling temperatures (FastChat's temperature_config); other categories get 0.7 as in FastChat.
DEFAULT_TEMPERATURES: dict[str, float] = {
    "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0, "reasoning": 0.0,
    "stem": 0.1, "humanities": 0.1,
}


@dataclass(frozen=True)
class GenerationConfig:
    """How answers are generated; everything here is part of the answers check's identity."""

    max_new_tokens: int = 1024
    temperatures: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TEMPERATURES))
    default_temperature: float = 0.7  # categories not in `temperatures`
    seed: int = 0
    system_prompt: str | None = None  # None: whatever the chat template does without one
    chat_template: str | None = None  # a Jinja template overriding the tokenizer's (local models only)

    def __post_init__(self) -> None:
        if int(self.max_new_tokens) != self.max_new_tokens or self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be a positive integer (got {self.max_new_tokens!r}).")
        for category, value in {**self.temperatures, "default": self.default_temperature}.items():
            if not 0 <= value <= 2:
                raise UserError(f"The temperature for {category} must be between 0 and 2 (got {value!r}).")

    @classmethod
    def greedy(cls, max_new_tokens: int = 1024, **kwargs: Any) -> GenerationConfig:
        """Greedy decoding in every category (deterministic; used by the benchmark)."""
        return cls(max_new_tokens=max_new_tokens, temperatures={}, default_temperature=0.0, **kwargs)

    def temperature_for(self, category: str) -> float:
        return float(self.temperatures.get(category, self.default_temperature))

    def identity(self) -> dict[str, Any]:
        return {
            "max_new_tokens": int(self.max_new_tokens),
            "temperatures": {k: float(v) for k, v in sorted(self.temperatures.items())},
            "default_temperature": float(self.default_temperature),
            "seed": int(self.seed),
            "system_prompt": self.system_prompt,
            "chat_template_override": stable_hash(self.chat_template, 16) if self.chat_template else None,
        }


def answers_check(questions: Sequence[Question], generation: GenerationConfig | None = None) -> CheckSpec:
    """The check under which a model's answers to `questions` are stored."""
    set_id = check_question_set(questions)
    generation = generation or GenerationConfig()
    return CheckSpec(kind=ANSWERS_KIND, name=f"mt-bench:{set_name(set_id)}",
                     config={"questions": set_id, "generation": generation.identity()})


def stored_answers(
    store: Store, ref: ModelRef, questions: Sequence[Question], generation: GenerationConfig | None = None
) -> dict[str, tuple[str, str]]:
    """question item id -> (turn-1 answer, turn-2 answer) for the questions whose answers are stored."""
    spec = answers_check(questions, generation)
    wanted = {q.item_id for q in questions}
    return {
        item.item_id: tuple(item.data["turns"])
        for item in store.items(ref.fingerprint, spec.hash, with_data=True)
        if item.item_id in wanted
    }


def _conversation(system_prompt: str | None, question: Question, first_answer: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": question.turns[0]})
    if first_answer is not None:
        messages.append({"role": "assistant", "content": first_answer})
        messages.append({"role": "user", "content": question.turns[1]})
    return messages


def _answer_item(question: Question, temperature: float, turns: list[str], n_tokens: list[int | None],
                 truncated: list[bool | None]) -> ItemRow:
    metrics = {f"n_tokens_t{i + 1}": n for i, n in enumerate(n_tokens) if n is not None}
    data = {"turns": turns, "category": question.category, "question_hash": question.content_hash(),
            "temperature": temperature, "truncated": truncated}
    return ItemRow(question.item_id, metrics, data)


def generate_answers(
    store: Store,
    ref: ModelRef,
    questions: Sequence[Question],
    *,
    generation: GenerationConfig | None = None,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    concurrency: int = 4,
    timeout: float = 600.0,
    max_retries: int = 4,
    progress: Progress | None = None,
) -> int:
    """Generate and store the answers the store does not have yet; return how many questions were answered now.

    `max_new_tokens` overrides `generation.max_new_tokens`. `batch_size` (default: the ModelRef's) is the
    number of questions per batch for local models; `concurrency`, `timeout` and `max_retries` apply to
    endpoint models. A model whose answers are all stored is never loaded.
    """
    generation = generation or GenerationConfig()
    if max_new_tokens is not None:
        generation = replace(generation, max_new_tokens=max_new_tokens)
    progress = progress or NullProgress()
    spec = answers_check(questions, generation)
    stored = store.item_ids(ref.fingerprint, spec.hash)
    missing = [q for q in questions if q.item_id not in stored]
    if not missing:
        return 0
    if ref.kind != "endpoint" and ref.path is None and ref.model_object is None:
        raise UserError(
            f"{ref.name} has no weights or endpoint here (its answers were imported), so it cannot answer the "
            f"{len(missing)} question(s) it has no stored answer for. Import a file with those answers, or leave "
            "the questions out."
        )
    spec.register(store, ref)
    provenance: dict[str, Any] = {"questions": spec.config["questions"], "n_questions_missing": len(missing)}
    if ref.kind == "endpoint":
        provenance.update(backend="openai-endpoint", endpoint_host=endpoint_host(ref.base_url),
                          endpoint_model=ref.endpoint_model, concurrency=concurrency)
    else:
        import torch
        import transformers

        provenance.update(backend="transformers", transformers_version=transformers.__version__,
                          torch_version=torch.__version__, dtype=ref.dtype, device=ref.device or "cpu",
                          batch_size=batch_size or ref.batch_size,
                          chat_template_hash=(stable_hash(generation.chat_template, 16) if generation.chat_template
                                              else chat_template_hash(ref.path)))
    run_id = store.start_run(ref.fingerprint, spec.hash, provenance)
    started = time.time()
    status = "failed"
    done = 0

    def save(item: ItemRow) -> None:
        nonlocal done
        done += store.add_items(ref.fingerprint, spec.hash, run_id, [item])
        progress.advance(1)

    progress.start(f"answers: {ref.name}", len(missing))
    try:
        if ref.kind == "endpoint":
            _generate_endpoint(ref, missing, generation, save, concurrency=concurrency, timeout=timeout,
                               max_retries=max_retries)
        else:
            _generate_local(ref, missing, generation, save, batch_size=batch_size or ref.batch_size)
        status = "done"
    except EndpointUnavailable as exc:
        raise UserError(
            f"{exc} Stopped after answering {done} of {len(missing)} questions; those answers are stored and "
            "running the same command again continues with the rest."
        ) from exc
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        provenance["seconds"] = round(time.time() - started, 3)
        store.finish_run(run_id, status=status, provenance=provenance)
        progress.done()
    return done


def _batch_seed(seed: int, batch: Sequence[Question]) -> int:
    """A seed that depends only on the config seed and which questions are in the batch."""
    return zlib.crc32(("|".join(q.item_id for q in batch) + f"#{seed}").encode())


def _generate_local(ref: ModelRef, questions: Sequence[Question], generation: GenerationConfig, save,
                    *, batch_size: int) -> None:
    model = LocalChatModel(ref, chat_template=generation.chat_template)
    model.load()  # fail on a missing chat template before any work
    by_temperature: dict[float, list[Question]] = defaultdict(list)
    for question in questions:
        by_temperature[generation.temperature_for(question.category)].append(question)
    tokenizer = model.tokenizer
    for temperature, group in sorted(by_temperature.items()):
        # Similar prompt lengths in one batch waste less compute on padding.
        group.sort(key=lambda q: len(tokenizer(model.render(_conversation(generation.system_prompt, q, None)),
                                                add_special_tokens=False)["input_ids"]))
        for start in range(0, len(group), max(1, batch_size)):
            batch = group[start:start + max(1, batch_size)]
            seed = _batch_seed(generation.seed, batch)
            first = model.generate([_conversation(generation.system_prompt, q, None) for q in batch],
                                   temperature=temperature, max_new_tokens=generation.max_new_tokens, seed=seed)
            second = model.generate(
                [_conversation(generation.system_prompt, q, a.text) for q, a in zip(batch, first)],
                temperature=temperature, max_new_tokens=generation.max_new_tokens, seed=seed + 1,
            )
            for question, a1, a2 in zip(batch, first, second):
                save(_answer_item(question, temperature, [a1.text, a2.text], [a1.n_tokens, a2.n_tokens],
                                  [a1.truncated, a2.truncated]))


def _generate_endpoint(ref: ModelRef, questions: Sequence[Question], generation: GenerationConfig, save,
                       *, concurrency: int, timeout: float, max_retries: int) -> None:
    if generation.chat_template:
        raise UserError(
            f"{ref.name} is served by an endpoint, which applies its own chat template; a chat_template "
            "override only works for local models. Remove it, or configure the template on the server."
        )
    endpoint = ChatEndpoint(ref.base_url, ref.endpoint_model, api_key_env=ref.api_key_env, timeout=timeout,
                            max_retries=max_retries, role="model endpoint")

    def answer(question: Question) -> tuple[float, list[str]]:
        temperature = generation.temperature_for(question.category)
        seed = generation.seed if temperature > 1e-4 else None
        first = endpoint.complete(_conversation(generation.system_prompt, question, None), temperature=temperature,
                                  max_tokens=generation.max_new_tokens, seed=seed).strip()
        second = endpoint.complete(_conversation(generation.system_prompt, question, first),
                                   temperature=temperature, max_tokens=generation.max_new_tokens, seed=seed).strip()
        return temperature, [first, second]

    def store_answer(question: Question, result: tuple[float, list[str]]) -> None:
        temperature, turns = result
        save(_answer_item(question, temperature, turns, [None, None], [None, None]))

    run_bounded(questions, answer, store_answer, concurrency=concurrency)
