"""One OpenAI-compatible chat endpoint (a judge, or a model served elsewhere) behind the official client.

Transport policy: the `openai` client retries connection errors, timeouts, HTTP 408/409/429 and 5xx with
exponential backoff and jitter (and honours Retry-After); `max_retries` and `timeout` bound it. When the
retries are used up the call raises EndpointUnavailable, which stops the run; errors that retrying cannot
fix (a rejected key, an unknown model, a malformed request) raise a UserError at once. The API key is read
from the environment variable the user named, is sent only to the endpoint, and is scrubbed from every
message mergeval shows.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlparse

from mergeval.errors import UserError
from mergeval.models import check_base_url

Messages = list[dict[str, str]]


class EndpointUnavailable(UserError):
    """The endpoint did not answer usefully after all retries (down, overloaded, timing out)."""


def endpoint_host(base_url: str) -> str:
    """The host[:port] of a base URL: the part of an endpoint's identity that is safe to store."""
    parsed = urlparse(base_url if "://" in base_url else "http://" + base_url)
    return parsed.netloc.rpartition("@")[2] or base_url.rpartition("@")[2]


class ChatEndpoint:
    """Chat completions from `model` at `base_url`; thread-safe (one shared HTTP client)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        role: str = "judge",
    ):
        self.base_url = check_base_url(base_url, role)  # a scheme, a host, no credentials: else a UserError now
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.role = role
        self._client: Any = None
        self._lock = threading.Lock()
        self._key: str | None = None

    @property
    def host(self) -> str:
        return endpoint_host(self.base_url)

    def _api_key(self) -> str:
        if not self.api_key_env:
            return "EMPTY"  # local servers (vLLM, transformers serve) accept any key; the client needs one
        key = os.environ.get(self.api_key_env)
        if not key:
            raise UserError(
                f"The {self.role} at {self.host} needs an API key, read from the environment variable "
                f"{self.api_key_env}, which is not set. Export it (export {self.api_key_env}=...) and run again."
            )
        return key

    def client(self):
        with self._lock:
            if self._client is None:
                import openai

                self._key = self._api_key()
                self._client = openai.OpenAI(
                    base_url=self.base_url, api_key=self._key, timeout=self.timeout, max_retries=self.max_retries
                )
            return self._client

    def _scrub(self, text: str) -> str:
        if self._key and self._key != "EMPTY" and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return text

    def complete(
        self, messages: Messages, *, temperature: float, max_tokens: int, seed: int | None = None
    ) -> str:
        """The assistant message's text ('' when the endpoint returned no content)."""
        import openai

        client = self.client()
        kwargs: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        if seed is not None:
            kwargs["seed"] = seed
        who = f"The {self.role} at {self.host} (model {self.model!r})"
        try:
            response = client.chat.completions.create(model=self.model, messages=messages, **kwargs)
        except openai.APITimeoutError as exc:
            raise EndpointUnavailable(
                f"{who} did not answer within {self.timeout:g} s, {self.max_retries} retries included."
            ) from exc
        except openai.APIConnectionError as exc:
            raise EndpointUnavailable(
                f"{who} could not be reached ({self._scrub(str(exc.__cause__ or exc))}) after {self.max_retries} "
                "retries. Check that the server is running and the base URL is right."
            ) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            where = f"the variable {self.api_key_env}" if self.api_key_env else "no variable (no key was sent)"
            raise UserError(
                f"{who} rejected the API key (HTTP {exc.status_code}); the key came from {where}. Set a valid key."
            ) from exc
        except openai.NotFoundError as exc:
            raise UserError(
                f"{who} answered 404: {self._scrub(_error_text(exc))}. Check the model name and the base URL "
                "(it usually ends in /v1; for vLLM or transformers serve the model name is the one it was "
                "started with)."
            ) from exc
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            raise UserError(
                f"{who} rejected the request (HTTP {exc.status_code}): {self._scrub(_error_text(exc))}."
            ) from exc
        except openai.APIStatusError as exc:  # 429 and 5xx after the client's retries, or another status
            raise EndpointUnavailable(
                f"{who} kept answering HTTP {exc.status_code} ({self._scrub(_error_text(exc))}) after "
                f"{self.max_retries} retries."
            ) from exc
        except ValueError as exc:  # HTTP 200 whose body is not the JSON it claims to be
            raise UserError(
                f"{who} answered with a body that is not valid JSON ({exc}). Check the base URL: it must be the "
                "OpenAI-compatible API root (usually ending in /v1)."
            ) from exc
        return _reply_text(response, who)


def _reply_text(response: Any, who: str) -> str:
    """The text of a chat completion; a UserError when the server answered something else (HTTP 200 with an
    HTML page or other JSON: a wrong base URL, a proxy's login page)."""
    choices = getattr(response, "choices", None)
    if choices is None:
        body = response if isinstance(response, str) else repr(response)
        snippet = " ".join(body.split())[:80]
        raise UserError(
            f"{who} answered with something that is not a chat completion ({snippet!r}...). Check the base URL: "
            "it must be the OpenAI-compatible API root (usually ending in /v1), not a web page."
        )
    if not choices:
        return ""
    try:
        content = choices[0].message.content
    except (AttributeError, IndexError, TypeError, KeyError):
        raise UserError(f"{who} answered a chat completion without a message; check that the server speaks the "
                        "OpenAI chat completions API.") from None
    if content is not None and not isinstance(content, str):
        raise UserError(f"{who} answered a message whose content is not text; check the server.")
    return content or ""


def _error_text(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
        if isinstance(inner, str):
            return inner[:300]
    return str(exc)[:300]
