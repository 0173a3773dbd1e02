"""docs/cli.md is what the CLI says about itself (typer's own docs generator, tools/gen_cli_docs.py)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "tools" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_current():
    expected = _generator().render()
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == expected, "docs/cli.md is out of date: python tools/gen_cli_docs.py > docs/cli.md"


def test_every_command_and_subcommand_is_documented_with_its_arguments():
    text = _generator().render()
    for command in ("eval", "show", "export", "data pull", "convert", "init", "run", "compare", "gate", "sanity",
                    "perplexity", "bleu", "consistency", "humaneval", "mtbench", "mtbench-pair", "merge", "sweep",
                    "demo"):
        assert f"## `mergeval {command}`" in text, command
    run = text.split("## `mergeval run`", 1)[1].split("\n## ", 1)[0]
    arguments, options = run.split("**Options**:", 1)
    assert "PLAN_FILE" in arguments.upper() and "--store" not in arguments  # an argument is no option
    assert "--only" in options and "--store" in options
