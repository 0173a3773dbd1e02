"""Regenerate docs/cli.md from the CLI itself, with typer's own generator (`typer mergeval.cli utils docs`)
under a header about exit codes and the environment:

    python tools/gen_cli_docs.py > docs/cli.md

tests/cli/test_cli_docs.py fails when docs/cli.md is not what this prints.
"""

import typer
from typer.cli import get_docs_for_click

from mergeval.cli import app

TITLE = "mergeval command line"
HEADER = f"""# {TITLE}

Generated from the CLI (`python tools/gen_cli_docs.py > docs/cli.md`, typer's own `utils docs`); `mergeval
COMMAND --help` says the same.

Exit codes: 0 success; 1 a gate or check failed (`run`, `gate`, `sanity`, `consistency`); 2 a user error (bad
input, missing model or data, damaged store: one line naming the problem and the fix, no traceback, nothing
stored is changed); 3 no failure but some gate not evaluated (`run`, `gate`; `consistency`: no pairs scored);
4 some work failed for good on a Ray cluster (everything else is stored; docs/cluster.md); 130 interrupted
(Ctrl-C: everything finished so far is stored and the run is marked `interrupted`; run the same command again
to resume).

Environment: `MERGEVAL_STORE` (default store), `MERGEVAL_DATA_DIR` (dataset mirror), `MERGEVAL_CACHE`
(converted GGUF models, trained demo models), `HF_HUB_OFFLINE=1` (never touch the network).

"""


def render() -> str:
    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="mergeval")
    docs = get_docs_for_click(obj=command, ctx=ctx, name="mergeval", title=TITLE)
    body = docs.removeprefix(f"# {TITLE}\n\n")
    return f"{HEADER}{body.strip()}\n"


if __name__ == "__main__":
    print(render(), end="")
