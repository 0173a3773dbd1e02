"""Answer generation: every question's two turns, yielded as they are finished (the caller stores them).

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

import zlib
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mergeval.core.identity import content_hash
from mergeval.engines.chat._endpoint import ChatEndpoint, EndpointUnavailable, Messages, endpoint_host
from mergeval.engines.chat._local import LocalChatModel
from mergeval.engines.chat._pool import bounded
from mergeval.engines.chat.questions import Question
from mergeval.errors import UserError
from mergeval.models import ModelRef, chat_template_hash

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
            "chat_template_override": content_hash(self.chat_template, 16) if self.chat_template else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """All settings, the template text included, as JSON data (a work unit carries them)."""
        return {**asdict(self), "temperatures": dict(self.temperatures)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationConfig:
        return cls(**data)


def conversation(system_prompt: str | None, question: Question, first_answer: str | None) -> Messages:
    """The messages of turn 1, or of turn 2 after the model's own `first_answer`."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": question.turns[0]})
    if first_answer is not None:
        messages.append({"role": "assistant", "content": first_answer})
        messages.append({"role": "user", "content": question.turns[1]})
    return messages


@dataclass(frozen=True)
class Answer:
    """A question's two answers, as they are stored (item id = the question id)."""

    question: Question
    temperature: float
    turns: tuple[str, str]
    n_tokens: tuple[int | None, int | None] = (None, None)
    truncated: tuple[bool | None, bool | None] = (None, None)
    source: str | None = None  # the FastChat answer file it was imported from

    @property
    def item_id(self) -> str:
        return self.question.item_id

    @property
    def metrics(self) -> dict[str, float]:
        return {f"n_tokens_t{i + 1}": n for i, n in enumerate(self.n_tokens) if n is not None}

    @property
    def data(self) -> dict[str, Any]:
        out = {"turns": list(self.turns), "category": self.question.category,
               "question_hash": self.question.content_hash(), "temperature": self.temperature,
               "truncated": list(self.truncated)}
        if self.source is not None:
            out["imported_from"] = self.source
        return out


def imported_answers(questions: Sequence[Question], records: Mapping[str, Sequence[str]],
                     generation: GenerationConfig, source: str) -> list[Answer]:
    """The answers of a FastChat answer file (`records`: question id -> turns) for the questions it answers."""
    return [Answer(q, generation.temperature_for(q.category), tuple(records[q.item_id]), source=source)
            for q in questions if q.item_id in records]


def _batch_seed(seed: int, batch: Sequence[Question]) -> int:
    """A seed that depends only on the config seed and which questions are in the batch."""
    return zlib.crc32(("|".join(q.item_id for q in batch) + f"#{seed}").encode())


class LocalAnswerer:
    """Answers with a local model: batched by temperature, sorted by prompt length, left-padded."""

    def __init__(self, ref: ModelRef, *, batch_size: int | None = None):
        self.ref = ref
        self.batch_size = max(1, batch_size or ref.batch_size)
        self.model = LocalChatModel(ref)

    def load(self) -> None:
        self.model.load_weights()

    def provenance(self, generation: GenerationConfig) -> dict[str, Any]:
        """How the answers are made; settles the chat template first (a UserError when there is none)."""
        import torch
        import transformers

        self.model.use_template(generation.chat_template)
        self.model.load()
        template = (content_hash(generation.chat_template, 16) if generation.chat_template
                    else chat_template_hash(self.ref.path))
        return {"backend": "transformers", "transformers_version": transformers.__version__,
                "torch_version": torch.__version__, "dtype": self.ref.dtype, "device": self.ref.device or "cpu",
                "batch_size": self.batch_size, "chat_template_hash": template}

    def answer(self, questions: Sequence[Question], generation: GenerationConfig) -> Iterator[list[Answer]]:
        """Each batch's answers, as the batch is done."""
        model = self.model
        model.use_template(generation.chat_template)
        by_temperature: dict[float, list[Question]] = defaultdict(list)
        for question in questions:
            by_temperature[generation.temperature_for(question.category)].append(question)
        for temperature, group in sorted(by_temperature.items()):
            # Similar prompt lengths in one batch waste less compute on padding.
            group.sort(key=lambda q: self._prompt_length(generation, q))
            for start in range(0, len(group), self.batch_size):
                yield self._batch(group[start:start + self.batch_size], temperature, generation)

    def _prompt_length(self, generation: GenerationConfig, question: Question) -> int:
        text = self.model.render(conversation(generation.system_prompt, question, None))
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _batch(self, batch: list[Question], temperature: float, generation: GenerationConfig) -> list[Answer]:
        seed = _batch_seed(generation.seed, batch)
        first = self.model.generate([conversation(generation.system_prompt, q, None) for q in batch],
                                    temperature=temperature, max_new_tokens=generation.max_new_tokens, seed=seed)
        second = self.model.generate(
            [conversation(generation.system_prompt, q, a.text) for q, a in zip(batch, first)],
            temperature=temperature, max_new_tokens=generation.max_new_tokens, seed=seed + 1,
        )
        return [Answer(q, temperature, (a1.text, a2.text), (a1.n_tokens, a2.n_tokens), (a1.truncated, a2.truncated))
                for q, a1, a2 in zip(batch, first, second)]


class EndpointAnswerer:
    """Answers from an OpenAI-compatible endpoint, `concurrency` questions at a time."""

    def __init__(self, ref: ModelRef, *, concurrency: int = 4, timeout: float = 600.0, max_retries: int = 4):
        self.ref = ref
        self.concurrency = concurrency
        self.endpoint = ChatEndpoint(ref.base_url, ref.endpoint_model, api_key_env=ref.api_key_env, timeout=timeout,
                                     max_retries=max_retries, role="model endpoint")

    def load(self) -> None:
        pass  # nothing to load: the first request opens the connection

    def provenance(self, generation: GenerationConfig) -> dict[str, Any]:
        if generation.chat_template:
            raise UserError(
                f"{self.ref.name} is served by an endpoint, which applies its own chat template; a chat_template "
                "override only works for local models. Remove it, or configure the template on the server."
            )
        return {"backend": "openai-endpoint", "endpoint_host": endpoint_host(self.ref.base_url),
                "endpoint_model": self.ref.endpoint_model, "concurrency": self.concurrency}

    def answer(self, questions: Sequence[Question], generation: GenerationConfig) -> Iterator[list[Answer]]:
        """Each question's answers, as the question is done."""
        self.provenance(generation)  # refuses a chat template override before any request

        def ask(question: Question) -> Answer:
            temperature = generation.temperature_for(question.category)
            seed = generation.seed if temperature > 1e-4 else None
            options = {"temperature": temperature, "max_tokens": generation.max_new_tokens, "seed": seed}
            first = self.endpoint.complete(conversation(generation.system_prompt, question, None), **options).strip()
            second = self.endpoint.complete(conversation(generation.system_prompt, question, first), **options).strip()
            return Answer(question, temperature, (first, second))

        for _, answer in bounded(questions, ask, concurrency=self.concurrency):
            yield [answer]


Answerer = LocalAnswerer | EndpointAnswerer


def make_answerer(ref: ModelRef, *, batch_size: int | None = None, concurrency: int = 4, timeout: float = 600.0,
                  max_retries: int = 4) -> Answerer:
    """The answerer of `ref`: its endpoint, or its local weights (loaded by `.load()`)."""
    if ref.kind == "endpoint":
        return EndpointAnswerer(ref, concurrency=concurrency, timeout=timeout, max_retries=max_retries)
    if ref.path is None and ref.model_object is None:
        raise UserError(
            f"{ref.name} has no weights or endpoint here (its answers were imported), so it cannot answer "
            "questions it has no stored answer for. Import a file with those answers, or leave the questions out."
        )
    return LocalAnswerer(ref, batch_size=batch_size)


def answer_all(answerer: Answerer, questions: Sequence[Question], generation: GenerationConfig) -> Iterator[list[Answer]]:
    """`answerer.answer(...)`; an endpoint that stays down stops with a UserError saying how far it got (the
    answers yielded before are the caller's to keep)."""
    done = 0
    try:
        for answers in answerer.answer(questions, generation):
            done += len(answers)
            yield answers
    except EndpointUnavailable as exc:
        raise UserError(
            f"{exc} Stopped after answering {done} of {len(questions)} questions; those answers are stored and "
            "running the same command again continues with the rest."
        ) from exc


__all__ = [
    "DEFAULT_TEMPERATURES",
    "Answer",
    "Answerer",
    "EndpointAnswerer",
    "GenerationConfig",
    "LocalAnswerer",
    "answer_all",
    "conversation",
    "imported_answers",
    "make_answerer",
]
