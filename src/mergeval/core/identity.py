"""Identity is content: the one place where "is this the same check?" is decided.

A stored result belongs to (model fingerprint, check hash, item id). The check hash is `content_hash` of the
check's identity config: a JSON-able mapping of everything that can change an item's outcome (task
definition, few-shot count, generation settings, judge and prompt, resolved dtype, ...). It is computed from
content only, never from `repr()`/`str()` of objects (which can hold memory addresses), paths or dict order:
`canonical` refuses anything it cannot express as content, so a new kind of value fails loudly in tests
instead of silently changing hashes between processes.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

HASH_CHARS = 24  # hex characters of a check hash (96 bits)


class IdentityError(TypeError):
    """A value that cannot be part of an identity (it has no stable content)."""


def callable_identity(fn: Callable[..., Any]) -> dict[str, str]:
    """A function as content: its module, qualified name and the hash of its source text.

    lm-eval task configs hold functions (`process_docs`, `doc_to_text`, ...); their `str()` holds a memory
    address that differs in every process. Two processes loading the same task file get the same identity;
    editing the function's code changes it."""
    target = inspect.unwrap(fn)
    if isinstance(target, type) or not callable(target):
        raise IdentityError(f"not a function: {type(fn).__name__}")
    module = getattr(target, "__module__", None) or ""
    if "/" in module or os.sep in module:  # lm-eval names a task folder's utils.py by its file path: a
        module = Path(module).name  # location, not content (the source hash says what the code is)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or type(target).__name__
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):  # builtins, C functions, functions defined in a REPL
        source = ""
    out = {"function": f"{module}.{name}"}
    if source:
        out["source_sha256"] = hashlib.sha256(source.encode()).hexdigest()[:16]
    return out


def canonical(value: Any) -> Any:
    """`value` as plain JSON data with a content-only meaning: mappings (string keys), lists, strings,
    finite numbers, booleans, None; functions by `callable_identity`; enums by value; pydantic models and
    dataclasses by their fields. Anything else raises IdentityError."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise IdentityError(f"a non-finite number ({value}) cannot be part of an identity")
        return value
    if isinstance(value, Enum):
        return canonical(value.value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                key = canonical(key)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise IdentityError(f"mapping key {key!r} is not a scalar")
                key = json.dumps(key)
            out[key] = canonical(item)
        return out
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False))
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):  # pydantic models
        return canonical(model_dump(mode="json"))
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None and not isinstance(value, type):
        return canonical({name: getattr(value, name) for name in fields})
    if callable(value):
        return callable_identity(value)
    raise IdentityError(
        f"{type(value).__module__}.{type(value).__qualname__} has no content identity; convert it to plain "
        "data (a string, number, list or mapping) before hashing"
    )


def canonical_json(value: Any) -> str:
    """The canonical text of an identity: sorted keys, UTF-8 text as is, no NaN.

    (Sorted keys and `ensure_ascii=False` are the settings mergeval's check hashes have always used, so the
    hashes of existing stores stay valid wherever their configs were plain data.)"""
    return json.dumps(canonical(value), sort_keys=True, ensure_ascii=False, allow_nan=False)


def content_hash(value: Any, chars: int = HASH_CHARS) -> str:
    """The hex SHA-256 of `canonical_json(value)`, cut to `chars` characters."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:chars]


__all__ = ["HASH_CHARS", "IdentityError", "callable_identity", "canonical", "canonical_json", "content_hash"]
