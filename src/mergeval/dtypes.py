"""The dtype a model really runs in: the dtype part of every check identity.

`--dtype auto` and the dtype it resolves to load the same weights in the same precision, so they are one
check, and so are `fp32` and `float32`. `resolved_dtype` is the one helper every check type's identity uses:
an explicit dtype with its aliases spelled out; for `auto`, what transformers picks (config.json's `dtype` /
`torch_dtype`, else the first floating-point tensor of the weights; a folder converted from GGUF says in its
config.json what it was saved in); an in-memory model's own dtype, whatever was asked.

Stores written before this held rows under the spelling the user wrote (`auto`, `fp32`);
`adopt_legacy_dtype_rows` moves a model's rows to the resolved identity when the old spelling loads that model
in the same dtype (docs/methodology.md, "Check identity").
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mergeval.models import ModelRef
    from mergeval.store import Store

_DTYPE_NAMES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "float64": "float64", "fp64": "float64", "double": "float64",
}
_SAFETENSORS_FLOATS = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}


def canonical_dtype(dtype: Any) -> str:
    """'fp32' -> 'float32', torch.bfloat16 -> 'bfloat16', None / 'auto' -> 'auto'; other strings as they are
    (the model loaders reject them with a clear message)."""
    if dtype is None:
        return "auto"
    name = str(dtype).removeprefix("torch.")
    return _DTYPE_NAMES.get(name, name)


def _first_float_in_safetensors(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error):
        return None
    for name in sorted(k for k in header if k != "__metadata__"):
        dtype = _SAFETENSORS_FLOATS.get(str(header[name].get("dtype")))
        if dtype:
            return dtype
    return None


def auto_dtype(folder: str | Path | None) -> str | None:
    """The dtype transformers loads a model folder in with `dtype="auto"` (None when it cannot be told from
    the files): config.json's `dtype` (or its older name `torch_dtype`), else the dtype of the first
    floating-point tensor of the first safetensors file (transformers' own fallback)."""
    if folder is None:
        return None
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(config, dict):
        for key in ("dtype", "torch_dtype"):
            value = config.get(key)
            if isinstance(value, str) and canonical_dtype(value) in _DTYPE_NAMES.values():
                return canonical_dtype(value)
    index = folder / "model.safetensors.index.json"
    files: list[Path] = []
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text()).get("weight_map") or {}
            files = [folder / f for f in sorted(set(weight_map.values()))]
        except (OSError, ValueError, AttributeError):
            files = []
    elif (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    return _first_float_in_safetensors(files[0]) if files else None


def resolved_dtype(ref: ModelRef, dtype: str | None = None) -> str:
    """The dtype `ref`'s weights are really loaded in when a check asks for `dtype` (default: the ref's own).

    An in-memory model (merge lab) is used as it is, whatever is asked. `auto` becomes what transformers
    picks for the folder (`auto_dtype`), or what the store recorded for it when the folder is gone
    (`metadata["auto_dtype"]`); it stays 'auto' only when neither is known (an endpoint, an unreadable
    folder)."""
    if ref.model_object is not None:
        own = getattr(ref.model_object, "dtype", None)
        if own is not None:
            return canonical_dtype(own)
    # an in-memory merge known from the store (sweep resume) or to be rebuilt elsewhere: as it was merged
    if (ref.recipe is not None or ref.kind == "in-memory") and ref.dtype != "auto":
        return canonical_dtype(ref.dtype)
    wanted = canonical_dtype(dtype if dtype is not None else ref.dtype)
    if wanted != "auto":
        return wanted
    found = auto_dtype(ref.path) if ref.path is not None else None
    if found is None:
        recorded = (ref.metadata or {}).get("auto_dtype")
        found = canonical_dtype(recorded) if recorded else None
    return found or "auto"


def legacy_dtypes(ref: ModelRef, requested: str | None, resolved: str) -> list[str]:
    """Dtype spellings that earlier versions put into check identities for what is now `resolved` on this
    model: the spelling asked for, its aliases, and 'auto' when auto resolves to the same dtype here."""
    spellings = {str(requested)} if requested is not None else set()
    spellings |= {alias for alias, name in _DTYPE_NAMES.items() if name == resolved}
    spellings.add("auto")
    return sorted(d for d in spellings if d != resolved and resolved_dtype(ref, d) == resolved)


def adopt_legacy_dtype_rows(
    store: Store,
    ref: ModelRef,
    *,
    kind: str,
    name: str,
    config: dict[str, Any],
    hash_of: Callable[[dict[str, Any]], str],
    requested: str | None = None,
    dtype_key: str = "dtype",
) -> int:
    """Move this model's items stored under the same check with an older spelling of its dtype (`auto`,
    `fp32`, ...) to the check's current identity, `hash_of(config)`. Returns how many items moved.

    Exact, no guessing: an older identity is recomputed with `hash_of` from `config` with only the dtype
    spelling changed, and it is adopted only when that spelling loads this model in the same dtype."""
    resolved = config.get(dtype_key)
    if not isinstance(resolved, str) or resolved == "auto":
        return 0
    new_hash = hash_of(config)
    moved = 0
    for spelling in legacy_dtypes(ref, requested, resolved):
        old_hash = hash_of({**config, dtype_key: spelling})
        if old_hash != new_hash and store.count_items(ref.fingerprint, old_hash):
            moved += store.adopt_items(ref.fingerprint, old_hash, new_hash, kind=kind, name=name, config=config)
    return moved


def stored_hash(
    store: Store,
    model: ModelRef | str,
    config: dict[str, Any],
    hash_of: Callable[[dict[str, Any]], str],
    dtype_key: str = "dtype",
) -> str:
    """The hash to read `model`'s items of this check from: its current identity, or, in a store no run has
    brought up to date yet (`adopt_legacy_dtype_rows`), the identity an earlier version gave the same check
    (the dtype as written). A bare fingerprint: the current identity."""
    current = hash_of(config)
    resolved = config.get(dtype_key)
    if isinstance(model, str) or not isinstance(resolved, str) or store.count_items(model.fingerprint, current):
        return current
    for spelling in legacy_dtypes(model, None, resolved):
        old = hash_of({**config, dtype_key: spelling})
        if store.count_items(model.fingerprint, old):
            return old
    return current
