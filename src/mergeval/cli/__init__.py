"""The `mergeval` command. Thin: parse arguments, call the library, render. Every command is a library call
that a notebook user can make too (see mergeval.api).

    options.py   what every command shares (consoles, option types, the one store default)
    progress.py  progress bars (the runner's progress protocol, drawn with rich)
    checks.py    a check type's command, its options derived from the check's Config
    results.py   eval, show, export, data pull, convert
    plan.py      init, run, compare, gate, sanity
    merge.py     merge, sweep, demo
    chat.py, code.py, text.py   the per-type commands of the chat, code and text checks
"""

from __future__ import annotations

import gc
import logging
import os
import sys

# lm-eval and datasets draw tqdm bars of their own; ours (rich) replace them. Must be set before tqdm loads.
os.environ.setdefault("TQDM_DISABLE", "1")

from typing import Annotated

import typer

from mergeval import __version__
from mergeval.cli import chat, code, diff, merge, plan, results, text
from mergeval.cli.options import DEFAULT_STORE, console, err_console, split_list
from mergeval.cli.progress import progress_display, rich_progress
from mergeval.errors import UserError

app = typer.Typer(
    name="mergeval",
    help="Is the merged checkpoint better than its parents? Evaluate, compare, gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Transition: the chat, code and text command modules still reach these through `mergeval.cli`.
DEFAULT_STORE_PATH = DEFAULT_STORE
_split = split_list

__all__ = ["app", "console", "err_console", "main", "progress_display", "rich_progress"]


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    for noisy in ("lm_eval", "lm-eval", "datasets", "transformers", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    if verbose:
        return
    import warnings

    warnings.filterwarnings("ignore")
    # transformers and datasets read these when they are imported; importing them here would cost every
    # command seconds, even one that fails on its arguments.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DATASETS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    _quiet_loaded_libraries()


def _quiet_loaded_libraries() -> None:
    """transformers and datasets, when something already imported them, are told directly."""
    try:
        if "transformers" in sys.modules:
            sys.modules["transformers"].utils.logging.disable_progress_bar()
            sys.modules["transformers"].utils.logging.set_verbosity_error()
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
            sys.modules["datasets"].logging.set_verbosity_error()
    except Exception as exc:  # noqa: BLE001  quieter logs are a nicety, never a reason to fail
        logging.getLogger("mergeval").debug("could not quiet library logs: %s", exc)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"mergeval {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library logs.")] = False,
) -> None:
    _configure_logging(verbose)


for _module in (results, plan, text, merge, code, chat, diff):
    _module.register(app)


def _no_flag_metavars() -> None:
    """A flag takes no value, so its help line shows none: typer >= 0.29 labels every flag (`--help` too)
    `<bool>`. One place for every command, whatever module registered it (and docs/cli.md, generated from
    the same commands)."""
    try:
        from typer.core import TyperOption
    except ImportError:  # another typer: its own help screens
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_mergeval", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) and self.metavar is None else shown(self, ctx)

    display_type_rich._mergeval = True
    TyperOption.display_type_rich = display_type_rich


_no_flag_metavars()


INTERRUPTED = 130


def main() -> None:
    """Entry point: user errors print one clear message and exit non-zero, without a traceback."""
    try:
        # Without standalone mode, click returns (instead of raising) the code of a `typer.Exit(code)`;
        # typer turns Ctrl-C (KeyboardInterrupt) into Exit(130).
        code = app(standalone_mode=False)
        if code == INTERRUPTED:
            _interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as exc:
        _say_error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors
        _click_error(exc)
        raise
    finally:
        # The command is over and its output written. Freezing the heap spares the interpreter's last garbage
        # collections over the ~500k objects torch, transformers and lm-eval leave: after `mergeval demo`, 2.4 s
        # of silence before the prompt comes back, 0.3 s frozen. Nothing is skipped: atexit handlers still run.
        gc.freeze()


def _click_error(exc: Exception) -> None:
    """A usage error in one line (the problem, then where the help is); other click errors as click shows
    them. Returns for anything else."""
    usage_errors, click_errors = _click_errors()
    if isinstance(exc, usage_errors):
        command = exc.ctx.command_path if exc.ctx is not None else "mergeval"
        message = exc.format_message().rstrip()
        _say_error(f"{message}{'' if message.endswith(('.', '?', '!')) else '.'} See `{command} --help`.")
        sys.exit(exc.exit_code)
    if isinstance(exc, click_errors):
        exc.show()
        sys.exit(exc.exit_code)


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage errors, all click errors): typer >= 0.20 raises those of its own copy of click."""
    import click

    usage, errors = [click.UsageError], [click.ClickException]
    try:
        from typer._click import exceptions as typer_click
    except ImportError:
        pass
    else:
        usage.append(typer_click.UsageError)
        errors.append(typer_click.ClickException)
    return tuple(usage), tuple(errors)


def _say_error(message: str) -> None:
    """An error as printed: `error: ` and the message, which is never wrapped (one line per line of it)."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)


def _interrupted() -> None:
    err_console.print("\n[yellow]Interrupted. Everything evaluated so far is stored; run the same command "
                      "again to resume.[/yellow]")
    sys.exit(INTERRUPTED)
