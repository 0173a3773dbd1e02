"""Regenerate docs/cli.md from the CLI itself: `python tools/gen_cli_docs.py > docs/cli.md`."""

import click
import typer

from mergeval.cli import app

HEADER = """# mergeval command line

Generated from the CLI (`python tools/gen_cli_docs.py > docs/cli.md`); `mergeval COMMAND --help` says the same.

Exit codes: 0 success; 1 a gate or sanity check failed (`gate`, `sanity`); 2 a user error (bad input, missing
model or data, damaged store: one message, no traceback, nothing stored is changed); 3 `gate` with no failure
but some gate not evaluated; 130 interrupted (everything finished so far is stored; run again to resume).

Environment: `MERGEVAL_STORE` (default store), `MERGEVAL_DATA_DIR` (dataset mirror), `MERGEVAL_CACHE`
(converted GGUF models, trained demo models), `HF_HUB_OFFLINE=1` (never touch the network).
"""


def _params(cmd: click.Command) -> list[str]:
    rows = []
    for p in cmd.params:
        if p.name == "help":
            continue
        if isinstance(p, click.Argument):
            name = f"`{p.name.upper()}`" + ("..." if p.nargs == -1 else "")
            rows.append(f"| {name} | argument | {getattr(p, 'help', '') or ''} |")
            continue
        opts = ", ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
        default = p.default if p.default not in (None, False, [], ()) and not callable(p.default) else ""
        help_text = (p.help or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {opts} | {default} | {help_text} |")
    return rows


def _walk(group: click.Group, prefix: str) -> list[str]:
    out = []
    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
        full = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            out += _walk(cmd, full)
            continue
        out.append(f"\n## `{full}`\n")
        out.append((cmd.help or "").strip().split("\n\n")[0] + "\n")
        rows = _params(cmd)
        if rows:
            out += ["| option | default | meaning |", "|---|---|---|", *rows]
    return out


def main() -> None:
    root = typer.main.get_command(app)
    print(HEADER + "\n".join(_walk(root, "mergeval")))


if __name__ == "__main__":
    main()
