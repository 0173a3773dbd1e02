"""The sanity check type: probes stored once per identity and read back, the `mergeval sanity` command, and
an identity that does not depend on whether a parent's files are still there."""

import dataclasses

from mergeval.checks.sanity import SanityConfig, make_task, run_sanity_checks, stored_sanity
from mergeval.models import resolve
from mergeval.store import Store
from mergeval.testing import make_tiny_llama


def test_results_are_stored_once_and_read_back(tmp_path):
    model = resolve(make_tiny_llama(tmp_path / "m", seed=2), dtype="float32")
    with Store(tmp_path / "s.db") as store:
        assert stored_sanity(store, model) is None
        config = SanityConfig(max_new_tokens=16)
        check_hash = make_task(config, model).hash
        ran = run_sanity_checks(store, model, config=config)
        assert ran
        assert store.check(check_hash).kind == "sanity"
        ran_again = run_sanity_checks(store, model, config=config)
        assert not ran_again  # nothing recomputed: the store already holds every check
        results, facts = stored_sanity(store, model, max_new_tokens=16)
        assert [r["check"] for r in results] == [
            "weights_finite",
            "hello",
            "continuation",
            "instruction",
            "repetition",
        ]
        assert {r["status"] for r in results} <= {"pass", "fail"}
        assert results[0]["status"] == "pass"
        assert set(facts) == {"params_b", "size_gb", "tokens_per_second"}
        # another configuration is another check: not found until it runs
        assert stored_sanity(store, model, max_new_tokens=32) is None


def test_sanity_command_exits_1_when_a_check_fails(tmp_path):
    import json

    from typer.testing import CliRunner

    from mergeval.cli import app

    model = make_tiny_llama(tmp_path / "m", seed=3)
    parent = make_tiny_llama(tmp_path / "p", seed=4)
    result = CliRunner().invoke(
        app,
        [
            "sanity",
            str(model),
            "--parent",
            str(parent),
            "--store",
            str(tmp_path / "s.db"),
            "--max-new-tokens",
            "16",
            "--json",
        ],
    )
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["passed"] is False
    statuses = {c["check"]: c["status"] for c in out["checks"]}
    assert statuses["weights_finite"] == "pass" and statuses["tokenizer"] == "pass"
    assert statuses["instruction"] == "fail"


def test_a_parent_known_only_from_the_store_keeps_the_identity(tmp_path):
    """A parent whose folder is gone (identified from the store: no path) is the same parent: the
    candidate's sanity identity, and so its stored results, stay; an endpoint parent (no tokenizer to
    compare) is left out."""
    model = resolve(make_tiny_llama(tmp_path / "m", seed=2), dtype="float32")
    parent = resolve(make_tiny_llama(tmp_path / "p", seed=3), dtype="float32")
    gone = dataclasses.replace(parent, path=None)  # what the plan engine builds from the store's model row
    endpoint = dataclasses.replace(parent, path=None, kind="endpoint", fingerprint="f" * 24)
    config = SanityConfig(max_new_tokens=16)
    local = make_task(config, model, [parent])
    assert make_task(config, model, [gone]).hash == local.hash
    assert make_task(config, model, [parent, endpoint]).hash == local.hash
    assert make_task(config, model, []).hash != local.hash
    # the tokenizer and chat-template probes need the parent's files: without them they are not asked for
    assert "tokenizer" in local.item_ids and "tokenizer" not in make_task(config, model, [gone]).item_ids
    with Store(tmp_path / "s.db") as store:
        assert run_sanity_checks(store, model, [parent], config) == len(local.item_ids)
        assert stored_sanity(store, model, [gone], max_new_tokens=16) == stored_sanity(
            store, model, [parent], max_new_tokens=16)
