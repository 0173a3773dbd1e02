"""Plan YAML with line numbers: every validation error names the line and says what to write instead.

    mergeval.yaml:7: unknown key 'canditate' in models[1] (did you mean 'candidate'?)

How: the YAML is parsed twice, once into plain data and once into a node tree whose start marks give the line
of every key and list item (`line_map`). Pydantic reports each error at a location such as
`("models", 1, "canditate")`; the longest prefix of that location found in the line map gives the line, and
the pydantic model at that location gives the valid keys to suggest from (difflib).

A pydantic model of the plan can adjust the keys suggested for it with two class attributes:
`yaml_extra_keys` (keys a shorthand accepts, e.g. a model's `candidate: PATH`) and `yaml_hidden_keys`
(fields that are internal to a shorthand, e.g. a score gate's `op`/`than`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mergeval.errors import UserError

PLAN_FILE = "mergeval.yaml"
MAX_PLAN_NODES = 20_000  # YAML nodes a plan may expand to, aliases included (a real plan has a few hundred)

Location = tuple[str | int, ...]
Problems = list[tuple[int, str]]  # (line, "file:line: message"), sorted by line before they are shown


class PlanError(UserError):
    """A plan file that does not validate; the message has one `file:line: problem` line per problem."""


class Strict(BaseModel):
    """Plan sections reject unknown keys: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid")


# -- suggestions ------------------------------------------------------------------------------------------


def closest(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    best = closest(word, choices)
    return f" (did you mean '{best}'?)" if best else ""


# -- reading YAML -----------------------------------------------------------------------------------------


def read_yaml(text: str, name: str) -> tuple[Any, yaml.Node | None]:
    """(plain data, node tree) of plan text; a PlanError naming the line for a syntax error or an alias bomb."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        check_expansion(node, name)  # before anything walks the tree: an alias bomb fails here, at once
        return yaml.safe_load(text), node
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanError(
            f"{where}: YAML syntax error: {problem}. Check the indentation and quoting there."
        ) from exc


def check_expansion(node: yaml.Node | None, name: str) -> None:
    """Raise a PlanError when aliases make the plan expand to more than MAX_PLAN_NODES nodes ("billion
    laughs") or an alias refers to the node that contains it. Counts each distinct node once (memoised), so
    this is fast whatever the expansion."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise PlanError(
                f"{name}:{n.start_mark.line + 1}: a YAML alias refers to the node that contains it; remove the "
                "loop (an alias *NAME can only repeat a finished anchor &NAME)."
            )
        open_nodes.add(key)
        total = 1
        if isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total += sum(size(child) for child in n.value)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    if node is not None and size(node) > MAX_PLAN_NODES:
        raise PlanError(
            f"{name}: YAML aliases make this plan expand to {size(node):,} nodes (more than {MAX_PLAN_NODES:,}); "
            "a plan needs a few hundred. Write the repeated parts out or use fewer nested aliases."
        )


def line_map(node: yaml.Node | None, problems: Problems) -> dict[Location, int]:
    """Location (keys and list indices from the root) -> 1-based line, for every node of the YAML tree.

    A mapping entry's location maps to its *key's* line. Duplicate keys (which YAML loaders silently
    overwrite) are reported in `problems`."""
    lines: dict[Location, int] = {}

    def walk(n: yaml.Node, loc: Location) -> None:
        lines.setdefault(loc, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in n.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in seen and key != "<<":
                    problems.append((line, f"duplicate key '{key}' (first on line {seen[key]}); keep one"))
                seen.setdefault(key, line)
                lines[loc + (key,)] = line
                walk(value_node, loc + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[loc + (i,)] = item.start_mark.line + 1
                walk(item, loc + (i,))

    if node is not None:
        walk(node, ())
    return lines


# -- locations --------------------------------------------------------------------------------------------


def line_for(lines: Mapping[Location, int], loc: Location) -> int | None:
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def where(source: Path | str | None, lines: Mapping[Location, int], loc: Location) -> str:
    """`file:line` of a plan location, for messages."""
    name = str(source) if source is not None else PLAN_FILE
    line = line_for(lines, loc)
    return f"{name}:{line}" if line else name


def format_loc(loc: Location) -> str:
    """("models", 1, "role") -> "models[1].role"; () -> "the plan"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "the plan"


# -- pydantic errors -> messages --------------------------------------------------------------------------


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation like `list[X]`, `X | None`, `X`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _model_at(cls: type[BaseModel], loc: Location) -> type[BaseModel] | None:
    """The pydantic model describing the mapping at `loc` (list indices are skipped)."""
    current: type[BaseModel] | None = cls
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _unwrap_model(info.annotation)
    return current


def valid_keys(cls: type[BaseModel] | None) -> list[str]:
    """The keys a plan author may write in the mapping `cls` validates."""
    if cls is None:
        return []
    hidden = set(getattr(cls, "yaml_hidden_keys", ()))
    keys = [k for k, info in cls.model_fields.items() if not info.exclude and k not in hidden]
    return keys + list(getattr(cls, "yaml_extra_keys", ()))


def _message(err: Any, cls: type[BaseModel], prefix: Location) -> tuple[Location, str]:
    """(location to report at, text) of one pydantic error."""
    loc: Location = tuple(err["loc"])
    full, kind, parent = prefix + loc, err["type"], loc[:-1]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        keys = valid_keys(_model_at(cls, parent))
        text = f"unknown key '{key}' in {format_loc(prefix + parent)}{did_you_mean(key, keys)}"
        if not closest(key, keys) and keys:
            text += f"; valid keys: {', '.join(keys)}"
        return full, text
    if kind == "missing":
        model = _model_at(cls, parent)
        info = model.model_fields.get(str(loc[-1])) if model else None
        hint = f" ({info.description})" if info is not None and info.description else ""
        return prefix + parent, f"{format_loc(prefix + parent)} needs '{loc[-1]}'{hint}"
    if kind in ("value_error", "assertion_error"):
        message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return full, f"{format_loc(full)}: {message}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        suggestion = did_you_mean(str(err["input"]), choices)
        return full, f"{format_loc(full)}: {err['input']!r} is not allowed{suggestion}; use {expected}"
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    return full, f"{format_loc(full)}: {err['msg'].lower()}{shown}"


def messages(
    exc: ValidationError,
    cls: type[BaseModel],
    prefix: Location,
    lines: Mapping[Location, int],
    source: Path | str | None,
) -> Problems:
    """Pydantic errors -> (line, 'file:line: message') with the closest valid key suggested for typos."""
    errors = exc.errors(include_url=False)
    extra_in = {tuple(e["loc"][:-1]) for e in errors if e["type"] == "extra_forbidden"}
    out: Problems = []
    for err in errors:
        if err["type"] == "missing" and tuple(err["loc"][:-1]) in extra_in:
            continue  # a misspelt key explains the missing one; report the typo only
        at, text = _message(err, cls, prefix)
        out.append((line_for(lines, at) or 0, f"{where(source, lines, at)}: {text}"))
    return out


def validate_part(
    cls: type[BaseModel],
    data: Any,
    prefix: Location,
    lines: Mapping[Location, int],
    source: Path | str | None,
    problems: Problems,
    context: dict[str, Any],
) -> Any:
    """`cls` validated from `data`, or None with the problems (lines named) added to `problems`."""
    try:
        return cls.model_validate(data, context=context)
    except ValidationError as exc:
        problems.extend(messages(exc, cls, prefix, lines, source))
        return None


def raise_problems(problems: Problems) -> None:
    """One PlanError listing every problem once, in line order (nothing when there is none)."""
    if problems:
        ordered = sorted(problems, key=lambda p: p[0])
        raise PlanError("\n".join(dict.fromkeys(msg for _, msg in ordered)))


__all__ = [
    "MAX_PLAN_NODES",
    "PLAN_FILE",
    "Location",
    "PlanError",
    "Problems",
    "Strict",
    "check_expansion",
    "closest",
    "did_you_mean",
    "format_loc",
    "line_for",
    "line_map",
    "messages",
    "raise_problems",
    "read_yaml",
    "valid_keys",
    "validate_part",
    "where",
]
