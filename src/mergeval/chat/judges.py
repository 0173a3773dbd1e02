"""Judges: any OpenAI-compatible endpoint, or a local Hugging Face model.

FastChat's gen_judgment accepts only the names gpt-4 / gpt-3.5-turbo / claude-v1; here a judge is whatever
answers chat completions: OpenAI or another hosted API, a vLLM / TGI / ``transformers serve`` server on your
machine, or a local model folder loaded with transformers.

A judge's ``identity()`` is what makes two judges give the same verdicts (model, host, decoding settings). It
is part of the judging check and of the judgment cache key, and never contains a secret: an endpoint's API
key is read from the environment variable the user named, at call time.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

from mergeval.chat._endpoint import ChatEndpoint, Messages, endpoint_host
from mergeval.chat._local import LocalChatModel
from mergeval.models import ModelRef, parse_endpoint, resolve


class Judge(ABC):
    """Something that answers a list of chat messages with text."""

    name: str
    concurrency: int = 1  # how many calls may run at once

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What determines this judge's output (stored with results; no secrets)."""

    @abstractmethod
    def complete(self, messages: Messages, *, repeat: int = 0) -> str:
        """The judge's reply. `repeat` numbers the K judgments of one prompt (a sampling seed)."""


class OpenAIJudge(Judge):
    """A judge behind an OpenAI-compatible chat completions endpoint.

    FastChat's settings are the defaults: temperature 0 and up to 2048 new tokens. `concurrency` calls run
    at once; `timeout` bounds each attempt and `max_retries` the retries (backoff with jitter) on connection
    errors, timeouts, 429 and 5xx.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        timeout: float = 120.0,
        max_retries: int = 4,
        concurrency: int = 4,
        name: str | None = None,
    ):
        self.name = name or model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.concurrency = max(1, concurrency)
        self.endpoint = ChatEndpoint(base_url, model, api_key_env=api_key_env, timeout=timeout,
                                     max_retries=max_retries, role="judge")

    def identity(self) -> dict[str, Any]:
        return {"kind": "openai", "model": self.endpoint.model, "host": endpoint_host(self.endpoint.base_url),
                "temperature": float(self.temperature), "max_tokens": int(self.max_tokens)}

    def complete(self, messages: Messages, *, repeat: int = 0) -> str:
        # A seed per repeat makes sampled repeats reproducible on servers that honour it (OpenAI, vLLM).
        seed = repeat if self.temperature > 0 else None
        return self.endpoint.complete(messages, temperature=self.temperature, max_tokens=self.max_tokens, seed=seed)


class HFJudge(Judge):
    """A local model as the judge, with its own chat template (one call at a time)."""

    def __init__(self, model: ModelRef | str | os.PathLike, *, temperature: float = 0.0, max_new_tokens: int = 1024,
                 name: str | None = None):
        self.ref = model if isinstance(model, ModelRef) else resolve(model)
        self.name = name or self.ref.name
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.concurrency = 1
        self._model = LocalChatModel(self.ref)

    def identity(self) -> dict[str, Any]:
        return {"kind": "hf", "fingerprint": self.ref.fingerprint, "temperature": float(self.temperature),
                "max_new_tokens": int(self.max_new_tokens)}

    def complete(self, messages: Messages, *, repeat: int = 0) -> str:
        (reply,) = self._model.generate([messages], temperature=self.temperature,
                                        max_new_tokens=self.max_new_tokens, seed=repeat)
        return reply.text


def make_judge(reference: str | os.PathLike, *, api_key_env: str | None = None, **options: Any) -> Judge:
    """A judge from a model reference: ``openai:<model>@<base_url>`` for an endpoint, else a local model.

    `options` go to OpenAIJudge (temperature, max_tokens, timeout, max_retries, concurrency, name) or HFJudge
    (temperature, max_new_tokens, name).
    """
    text = os.fspath(reference)
    if text.startswith("openai:"):
        model, base_url = parse_endpoint(text)
        return OpenAIJudge(model, base_url, api_key_env=api_key_env, **options)
    return HFJudge(text, **options)
