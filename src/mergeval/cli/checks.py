"""A check type's command, derived from its Config: the Config is the ONLY declaration of a check's options.

    app.command("bleu")(check_command("bleu", show=show_bleu, names={"data": "--data"}))

makes `mergeval bleu MODEL... [options]` whose options are the fields of the bleu check's Config (types,
defaults, descriptions as help, Literal choices, lists as repeatable options, pydantic bounds as click
ranges), plus the run options every check command shares (--store, --dtype, --device, --batch-size,
--trust-remote-code, --json). The command validates the Config (a bad value is one sentence, exit 2), runs
the check on the models through the runner (only what the store lacks is computed) and hands a `CheckRun`
to `show`, which prints and returns the exit code.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import typer
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from mergeval import api
from mergeval.cli.options import (
    DEFAULT_STORE,
    BatchOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelArg,
    ModelsArg,
    StoreOpt,
    TrustOpt,
    split_list,
)
from mergeval.cli.progress import rich_progress
from mergeval.core.check import Check, CheckConfig
from mergeval.core.registry import get_check
from mergeval.errors import UserError
from mergeval.models import check_run_settings

# Fields of every Config that a command does not offer: the type is the command, a one-check run needs no
# label, and the command's models are its arguments.
NOT_OPTIONS = frozenset({"type", "name", "models"})

ParentsOpt = Annotated[list[str] | None, typer.Option(
    "--parent", "-p", help="A parent model (repeat): the models are compared with it where the check does.")]

# The run options of check commands (plan settings and roles, not part of the check's Config); a command has
# DEFAULT_RUN_OPTIONS unless it names its own.
RUN_OPTIONS: dict[str, tuple[Any, Any]] = {
    "parents": (ParentsOpt, None),
    "store": (StoreOpt, DEFAULT_STORE),
    "dtype": (DtypeOpt, "auto"),
    "batch_size": (BatchOpt, 8),
    "device": (DeviceOpt, None),
    "trust_remote_code": (TrustOpt, False),
    "as_json": (JsonOpt, False),
}
DEFAULT_RUN_OPTIONS = ("store", "dtype", "batch_size", "device", "trust_remote_code", "as_json")


@dataclass
class CheckRun:
    """What a check command hands to its `show`: the validated config, the run's settings, the report."""

    check: Check
    config: CheckConfig
    models: list[str]
    store: Path
    settings: dict[str, Any]
    as_json: bool
    report: Any = None
    options: dict[str, Any] = field(default_factory=dict)  # the command's extra (non-Config) options
    parents: list[str] = field(default_factory=list)  # models given with --parent (plan role `parent`)


# -- Config fields -> typer parameters -----------------------------------------------------------------------


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`, (annotation, False) otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _cli_type(annotation: Any) -> Any | None:
    """The type typer gets for a field, or None when the field cannot be a command-line option (a mapping,
    a nested model, a union of different kinds): such fields keep their default on the command line."""
    inner, optional = _unwrap_optional(annotation)
    origin = typing.get_origin(inner)
    if origin is Literal or inner in (str, int, float, bool, Path):
        return inner | None if optional else inner
    if origin is list and typing.get_args(inner) and typing.get_args(inner)[0] in (str, int, float, Path):
        return list[typing.get_args(inner)[0]] | None
    return None


def _bounds(info: FieldInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            out["min"] = meta.ge
        elif isinstance(meta, annotated_types.Le):
            out["max"] = meta.le
    return out


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def config_parameters(config_cls: type[CheckConfig], *, names: Mapping[str, str | Sequence[str]] | None = None,
                      exclude: Sequence[str] = ()) -> list[inspect.Parameter]:
    """typer parameters (keyword-only, `Annotated[type, typer.Option(...)]`) for the fields of a Config.

    `names` gives a field other option names (aliases first kept by the tests and docs, e.g. {"data":
    ["--data", "--references"]}); `exclude` leaves fields out (their defaults apply)."""
    names = names or {}
    params = []
    for name, info in config_cls.model_fields.items():
        if name in NOT_OPTIONS or name in exclude:
            continue
        cli_type = _cli_type(info.annotation)
        if cli_type is None:
            continue
        decls = names.get(name, option_name(name))
        decls = [decls] if isinstance(decls, str) else list(decls)
        if _unwrap_optional(cli_type)[0] is bool:
            decls = [f"{d}/--no-{d[2:]}" for d in decls[:1]] + decls[1:]
        default = info.get_default(call_default_factory=True) if not info.is_required() else ...
        if isinstance(default, list):
            default = default or None
        help_text = info.description[:1].upper() + info.description[1:] if info.description else None
        option = typer.Option(*decls, help=help_text, show_default=default not in (None, ...),
                              **_bounds(info))
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                         annotation=Annotated[cli_type, option]))
    return params


def config_from_options(config_cls: type[CheckConfig], check_type: str, values: Mapping[str, Any],
                        *, base_dir: Path | None = None) -> CheckConfig:
    """The Config from option values: lists split on commas, unset options left to the Config's defaults; a
    bad value is a UserError that names the option."""
    data: dict[str, Any] = {"type": check_type}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list):
            value = split_list([str(v) for v in value]) if all(isinstance(v, str) for v in value) else value
        data[name] = value
    try:
        return config_cls.model_validate(data, context={"base_dir": str(base_dir or Path.cwd())})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            what = error["msg"].removeprefix("Value error, ")
            problems.append(f"{option_name(where)}: {what}" if where else what)
        raise UserError(f"{'; '.join(problems)}. See `mergeval {check_type} --help`.") from exc


# -- the command -------------------------------------------------------------------------------------------------


def run_check(check_type: str, config: CheckConfig, models: Sequence[str], *, store: Path,
              settings: Mapping[str, Any], parents: Sequence[str] = ()) -> Any:
    """Run one check on the models (candidates) and `parents` through the runner, as a plan of them would,
    and return the report."""
    settings = dict(settings)
    check_run_settings(dtype=settings.get("dtype"), device=settings.get("device"))
    trust = bool(settings.pop("trust_remote_code", False))
    roles = [("candidate", m) for m in models] + [("parent", p) for p in parents]
    entries = [{role: m, **({"trust_remote_code": True} if trust else {})} for role, m in roles]
    with rich_progress() as progress:  # what the plan engine draws progress with (mergeval.run)
        return api.evaluate(entries, checks=[config], store=store, progress=progress, **settings)


def check_command(
    check_type: str,
    *,
    show: Callable[[CheckRun], int | None],
    names: Mapping[str, str | Sequence[str]] | None = None,
    exclude: Sequence[str] = (),
    extra: Sequence[inspect.Parameter] = (),
    run_options: Sequence[str] = DEFAULT_RUN_OPTIONS,
    help: str | None = None,
    run: Callable[[CheckRun], Any] | None = None,
    one_model: bool = False,
) -> Callable[..., None]:
    """The typer command of a check type (see the module docstring). `extra` adds command-only options (e.g.
    `--details`), handed to `show` in `CheckRun.options`; `one_model` takes one MODEL argument instead of
    several; `run_options` picks the shared options (RUN_OPTIONS: "parents" adds --parent). `run` replaces how the check is run (default: the
    runner through `mergeval.evaluate`, whose report becomes `CheckRun.report`) by a function of the CheckRun
    that returns what `show` finds in `CheckRun.report` (e.g. per-model summaries read from the store)."""
    chk = get_check(check_type)
    config_params = config_parameters(chk.Config, names=names, exclude=exclude)
    run_params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=RUN_OPTIONS[n][1],
                                    annotation=RUN_OPTIONS[n][0]) for n in run_options]
    models_param = inspect.Parameter("model" if one_model else "models", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                     annotation=ModelArg if one_model else ModelsArg)
    params = [models_param, *config_params, *extra, *run_params]
    config_names = {p.name for p in config_params}
    extra_names = {p.name for p in extra}
    runner = run

    def command(**kwargs: Any) -> None:
        models = [kwargs.pop("model")] if one_model else kwargs.pop("models")
        parents = split_list(kwargs.pop("parents", None))
        as_json = bool(kwargs.pop("as_json", False))
        store = Path(kwargs.pop("store", DEFAULT_STORE))
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in extra_names}
        config = config_from_options(chk.Config, check_type, {k: kwargs.pop(k) for k in list(kwargs)
                                                              if k in config_names})
        settings = {k: v for k, v in kwargs.items() if v is not None}
        run = CheckRun(chk, config, list(models), store, settings, as_json, options=options, parents=parents)
        run.report = (runner(run) if runner is not None
                      else run_check(check_type, config, models, store=store, settings=settings, parents=parents))
        code = show(run)
        if code:
            raise typer.Exit(code)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = f"{check_type.replace('-', '_')}_cmd"
    command.__doc__ = help or chk.description or (chk.__doc__ or "").strip() or f"Run the {check_type} check."
    return command


__all__ = ["CheckRun", "check_command", "config_from_options", "config_parameters", "run_check"]
