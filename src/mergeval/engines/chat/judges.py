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
import re
from abc import ABC, abstractmethod
from typing import Any

from mergeval.engines.chat._endpoint import ChatEndpoint, Messages, endpoint_host
from mergeval.engines.chat._local import LocalChatModel
from mergeval.errors import UserError
from mergeval.models import ModelRef, parse_endpoint, resolve, url_without_userinfo

_HOST_PORT = re.compile(r"^[\w.\-]+(:[^@/]*@[\w.\-]+)?:\d+(/|$)")  # host:port/..., what a URL without its scheme looks like


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

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Everything needed to build this judge again in another process, as JSON data (`judge_from_spec`);
        no secrets: an endpoint's key stays in the environment variable it names."""


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

    def spec(self) -> dict[str, Any]:
        e = self.endpoint
        return {"kind": "openai", "model": e.model, "base_url": e.base_url, "api_key_env": e.api_key_env,
                "temperature": self.temperature, "max_tokens": self.max_tokens, "timeout": e.timeout,
                "max_retries": e.max_retries, "concurrency": self.concurrency, "name": self.name}

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

    def spec(self) -> dict[str, Any]:
        return {"kind": "hf", "model": self.ref.to_json(), "temperature": self.temperature,
                "max_new_tokens": self.max_new_tokens, "name": self.name}

    def identity(self) -> dict[str, Any]:
        return {"kind": "hf", "fingerprint": self.ref.fingerprint, "temperature": float(self.temperature),
                "max_new_tokens": int(self.max_new_tokens)}

    def complete(self, messages: Messages, *, repeat: int = 0) -> str:
        (reply,) = self._model.generate([messages], temperature=self.temperature,
                                        max_new_tokens=self.max_new_tokens, seed=repeat)
        return reply.text


def check_judge_reference(reference: str) -> str:
    """`reference` if it is an ``openai:<model>@<url>`` reference or can be a model folder / hub id; a UserError
    (without any credentials of the URL) when it is a bare URL."""
    if not reference.startswith("openai:") and ("://" in reference or _HOST_PORT.match(reference)):
        raise UserError(
            f"The judge {url_without_userinfo(reference)!r} looks like a URL; an endpoint judge is written "
            "openai:<model>@<url>, e.g. openai:gpt-4o@https://api.openai.com/v1 (a local judge is a model folder)."
        )
    if reference.startswith("openai:"):
        parse_endpoint(reference)  # a URL without a scheme, or with credentials: a UserError now
    return reference


def make_judge(reference: str | os.PathLike, *, api_key_env: str | None = None, **options: Any) -> Judge:
    """A judge from a model reference: ``openai:<model>@<base_url>`` for an endpoint, else a local model.

    `options` go to OpenAIJudge (temperature, max_tokens, timeout, max_retries, concurrency, name) or HFJudge
    (temperature, max_new_tokens, name).
    """
    text = check_judge_reference(os.fspath(reference))
    if text.startswith("openai:"):
        model, base_url = parse_endpoint(text)
        return OpenAIJudge(model, base_url, api_key_env=api_key_env, **options)
    return HFJudge(text, **options)


def judge_from_spec(spec: dict[str, Any]) -> Judge:
    """The judge a `Judge.spec()` describes (nothing is loaded or requested until it is asked something)."""
    options = {k: v for k, v in spec.items() if k not in ("kind", "model", "base_url")}
    if spec["kind"] == "openai":
        return OpenAIJudge(spec["model"], spec["base_url"], **options)
    if spec["kind"] == "hf":
        return HFJudge(ModelRef.from_json(spec["model"]), **options)
    raise ValueError(f"unknown judge kind {spec['kind']!r}")
