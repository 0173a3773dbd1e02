"""What every `mergeval` command shares: the consoles, the option types (one store default), list splitting.

Command modules import from here (never from `mergeval.cli` itself), so `mergeval.cli` can import them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mergeval.render.terminal import make_console
from mergeval.store import DEFAULT_STORE, RESULTS_DIR

# Without a terminal (a CI log, `| tee`): COLUMNS or a wide default, lines never wrapped (make_console).
console = make_console()
err_console = make_console(stderr=True)

STORE_ENV = "MERGEVAL_STORE"
DATA_DIR_ENV = "MERGEVAL_DATA_DIR"

# -- arguments and options -----------------------------------------------------------------------------------

ModelsArg = Annotated[
    list[str], typer.Argument(help="Model folders, hub ids (org/name\\[@rev]) or .gguf files.", show_default=False)
]
ModelArg = Annotated[str, typer.Argument(help="Model folder, hub id or .gguf file.", show_default=False)]
StoreOpt = Annotated[Path, typer.Option("--store", help="Results database (SQLite).", envvar=STORE_ENV)]
StoreOverride = Annotated[
    Path | None,
    typer.Option("--store", help="Results database (default: the plan's `store:`).", envvar=STORE_ENV),
]
DataDirOpt = Annotated[
    Path | None, typer.Option(help="Local dataset mirror (see `mergeval data pull`).", envvar=DATA_DIR_ENV)
]
DtypeOpt = Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16 (part of the check).")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu | cuda | cuda:1 | mps (default: best available).")]
BatchOpt = Annotated[int, typer.Option(min=1, help="Prompts or documents per forward pass.")]
BackendOpt = Annotated[
    str | None, typer.Option(help="mergeval-hf (prefix-sharing, default) | hf (plain lm-eval)")
]
TrustOpt = Annotated[bool, typer.Option(help="Allow model code from the model folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")]
SubjectsOpt = Annotated[bool, typer.Option(help="Also print per-subject tables (MMLU).")]
ExecutorOpt = Annotated[
    str | None,
    typer.Option("--executor", help="local (this process) | ray (a Ray cluster: pip install 'mergeval\\[ray]'; "
                 "docs/cluster.md). Default: the plan's settings.executor, else local."),
]
AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="The Ray cluster: auto | HOST:6379 | ray://HOST:10001 (default: the plan's "
                 "settings.ray_address, else a new local cluster)."),
]

__all__ = [
    "DEFAULT_STORE",
    "RESULTS_DIR",
    "AddressOpt",
    "BackendOpt",
    "BatchOpt",
    "DataDirOpt",
    "DeviceOpt",
    "DtypeOpt",
    "ExecutorOpt",
    "JsonOpt",
    "ModelArg",
    "ModelsArg",
    "StoreOpt",
    "StoreOverride",
    "SubjectsOpt",
    "TrustOpt",
    "console",
    "err_console",
    "split_list",
]


def split_list(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated option values as one list: `-t arc,mmlu -t gsm8k` -> [arc, mmlu, gsm8k]."""
    out: list[str] = []
    for v in values or []:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out
