"""A check type's command derives its options from the check's Config (mergeval.cli.checks)."""

import json
from typing import Literal

import pytest
import typer
from pydantic import Field
from typer.testing import CliRunner

from mergeval.cli.checks import CheckRun, check_command, config_parameters
from mergeval.core import Check, CheckConfig, check, registry


class ProbeConfig(CheckConfig):
    type: Literal["cli-probe"] = "cli-probe"
    prompts: list[str] = Field(min_length=1, description="prompts to send")
    max_new_tokens: int = Field(16, ge=1, le=64, description="longest answer")
    mode: Literal["greedy", "sample"] = Field("greedy", description="how to decode")
    chat: bool = Field(True, description="use the chat template")
    temperature: float | None = Field(None, gt=0, description="sampling temperature")
    weights: dict[str, float] = Field(default_factory=dict, description="not an option: a mapping")


class Probe(Check[ProbeConfig]):
    Config = ProbeConfig
    description = "A probe for the command tests."


@pytest.fixture(autouse=True, scope="module")
def _registered():
    """The probe type exists for these tests only (other tests list the registered types)."""
    check("cli-probe")(Probe)
    yield
    registry._REGISTRY.pop("cli-probe", None)


def _app() -> typer.Typer:
    app = typer.Typer()

    def show(run: CheckRun) -> int:
        print(json.dumps({"config": run.config.model_dump(mode="json"), "models": run.models, "parents": run.parents,
                          "settings": run.settings, "store": str(run.store), "report": run.report}))
        return 3 if run.config.mode == "sample" else 0

    app.command("cli-probe")(check_command("cli-probe", show=show, run=lambda run: "ran",
                                           names={"prompts": ["--prompt", "--prompts"]},
                                           run_options=("parents", "store", "dtype", "as_json")))
    app.command("other")(lambda: None)
    return app


def _invoke(*args):
    result = CliRunner().invoke(_app(), ["cli-probe", *args])
    return result, (json.loads(result.stdout) if result.exit_code in (0, 3) else None)


def test_options_come_from_the_config_fields():
    names = {p.name for p in config_parameters(ProbeConfig)}
    assert names == {"prompts", "max_new_tokens", "mode", "chat", "temperature"}  # not type, name, weights
    result, out = _invoke("m1", "m2", "--prompt", "a,b", "--prompts", "c", "--max-new-tokens", "8", "--no-chat",
                          "--parent", "p", "--dtype", "float32", "--store", "x.db")
    assert result.exit_code == 0, result.output
    assert out["config"] == {"type": "cli-probe", "name": None, "prompts": ["a", "b", "c"], "max_new_tokens": 8,
                             "mode": "greedy", "chat": False, "temperature": None, "weights": {}}
    assert out["models"] == ["m1", "m2"] and out["parents"] == ["p"] and out["report"] == "ran"
    assert out["settings"] == {"dtype": "float32"} and out["store"] == "x.db"
    help_text = CliRunner().invoke(_app(), ["cli-probe", "--help"], env={"COLUMNS": "200"}).stdout
    for option in ("--prompt", "--max-new-tokens", "--mode", "--chat", "--no-chat", "--temperature", "--parent"):
        assert option in help_text, option
    assert "Longest answer" in help_text and "greedy" in help_text and "--weights" not in help_text


def test_the_show_function_gives_the_exit_code():
    result, out = _invoke("m", "--prompt", "a", "--mode", "sample")
    assert result.exit_code == 3 and out["config"]["mode"] == "sample"


def test_bad_values_are_usage_errors_or_one_sentence():
    bounds, _ = _invoke("m", "--prompt", "a", "--max-new-tokens", "100")
    assert bounds.exit_code == 2 and "--max-new-tokens" in bounds.output
    choice, _ = _invoke("m", "--prompt", "a", "--mode", "beam")
    assert choice.exit_code == 2 and "beam" in choice.output
    missing, _ = _invoke("m")
    assert missing.exit_code == 2 and "--prompt" in missing.output
    from mergeval.errors import UserError

    result, _ = _invoke("m", "--prompt", "a", "--temperature", "0")
    assert isinstance(result.exception, UserError)
    assert str(result.exception).startswith("--temperature: ") and "mergeval cli-probe --help" in str(result.exception)
