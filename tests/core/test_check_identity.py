"""Identity is content: a check hashes the same in every process and for every spelling of its dtype, and
rows an earlier version stored under an address-polluted or a dtype-as-written identity are adopted, never
recomputed.

The bundled smoke suite's HellaSwag and Winogrande have `!function` callables that lm-eval copies into
`fewshot_config`: exactly what made every process hash them differently."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys

import pytest
import torch

from mergeval.core.identity import IdentityError
from mergeval.dtypes import resolved_dtype
from mergeval.engines.lmeval.harness import TaskLoader, check_hash_of, task_identity
from mergeval.evaluation import evaluate
from mergeval.export import export_results
from mergeval.models import resolve
from mergeval.store import Store
from mergeval.suites import load_suite
from mergeval.testing import make_tiny_llama

ADDRESS_TASKS = ["smoke_hellaswag", "smoke_winogrande"]


def _old_hash(value) -> str:
    """How mergeval hashed lm-eval checks before: `json.dumps(default=str)`, addresses and all."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:24]


@pytest.fixture(scope="module")
def smoke():
    suite = load_suite("smoke")
    loader = TaskLoader(suite)
    return loader, {t: loader.load(t, b) for b in suite.benchmarks for t in b.tasks}


def _old_task_dump(loader, prepared) -> dict:
    dumped = prepared.task.dump_config()
    for location in ("dataset_path", "dataset_kwargs", "metadata"):
        dumped.pop(location, None)
    original = loader._config(prepared.name)
    dumped["dataset_path"] = original.get("dataset_path")
    dumped["dataset_kwargs"] = original.get("dataset_kwargs")
    return dumped


def test_the_smoke_tasks_have_the_functions_that_were_hashed_as_addresses(smoke):
    loader, prepared = smoke
    for name in ADDRESS_TASKS:
        old_text = json.dumps(_old_task_dump(loader, prepared[name]), sort_keys=True, default=str)
        assert " at 0x" in old_text, name  # the fixture really has the bug
        assert prepared[name].legacy_address_hash
        text = json.dumps(task_identity(prepared[name].task, loader._config(name)), sort_keys=True)
        assert " at 0x" not in text
        assert "/" not in "".join(  # functions by module name, never by the task folder's path
            v["function"] for v in json.loads(text)["fewshot_config"].values() if isinstance(v, dict))
    assert not any(p.legacy_address_hash for n, p in prepared.items() if n not in ADDRESS_TASKS)


def test_checks_of_plain_tasks_keep_the_hashes_existing_stores_use(smoke):
    loader, prepared = smoke
    plain = [p for n, p in prepared.items() if n not in ADDRESS_TASKS]
    assert any(callable(v) for p in plain for v in p.task.config.to_dict(keep_callable=True).values())  # truthfulqa
    for p in plain:
        config = p.check_config_for("float32")
        assert config["task_config_hash"] == _old_hash(_old_task_dump(loader, p)), p.name
        assert p.check_hash_for("float32") == _old_hash(config), p.name


def test_identity_refuses_what_has_no_content():
    with pytest.raises(IdentityError):
        check_hash_of({"task": "x", "filter": object()})
    with pytest.raises(IdentityError):
        check_hash_of({"x": float("nan")})
    assert check_hash_of({"b": [1, 2], "a": "é"}) == check_hash_of({"a": "é", "b": (1, 2)})


def _eval_json(model, store, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "mergeval.cli", "eval", str(model), "--tasks", "hellaswag,winogrande",
         "--limit", "4", "--batch-size", "4", "--store", str(store), "--json", *extra],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_two_processes_evaluate_hellaswag_and_winogrande_once(tiny_model_dir, tmp_path):
    store = tmp_path / "s.db"
    first = _eval_json(tiny_model_dir, store)
    second = _eval_json(tiny_model_dir, store)
    assert first["evaluated_items"] == 8
    assert second["evaluated_items"] == 0
    assert second["models"][0]["scores"] == first["models"][0]["scores"]
    with Store(store) as db:
        assert len(db.checks("lm-eval")) == 2
    ids = [(r["task"], r["item_id"]) for r in json.loads(export_results(store, items=True))]
    assert len(ids) == len(set(ids)) == 8  # `export --items` lists every item once


# -- dtype -----------------------------------------------------------------------------------------------------


def _with_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def test_resolved_dtype_is_what_transformers_loads(tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    folders = {}
    folders["config"] = make_tiny_llama(tmp_path / "config", seed=1)  # config.json says float32
    folders["old-name"] = make_tiny_llama(tmp_path / "old-name", seed=1)
    _with_config(folders["old-name"], dtype=None, torch_dtype="bfloat16")
    folders["weights"] = make_tiny_llama(tmp_path / "weights", seed=1)
    _with_config(folders["weights"], dtype=None)
    weights = folders["weights"] / "model.safetensors"
    save_file({k: v.to(torch.float16) for k, v in load_file(weights).items()}, weights, metadata={"format": "pt"})
    seen = set()
    for name, folder in folders.items():
        loaded = str(AutoModelForCausalLM.from_pretrained(folder, dtype="auto").dtype).removeprefix("torch.")
        assert resolved_dtype(resolve(folder)) == loaded, name
        assert resolved_dtype(resolve(folder, dtype="fp32")) == "float32"
        seen.add(loaded)
    assert seen == {"float32", "bfloat16", "float16"}


def test_auto_and_the_dtype_it_resolves_to_are_one_check(tiny_model_dir, tmp_path, smoke):
    from mergeval.checks.humaneval import HumanEvalConfig, humaneval_scores
    from mergeval.checks.perplexity import PerplexityConfig
    from mergeval.checks.perplexity import check_hash as perplexity_hash
    from mergeval.checks.sanity import identity as sanity_config
    from mergeval.core.identity import content_hash as config_hash

    _, prepared = smoke
    auto, explicit, alias = (resolve(tiny_model_dir, dtype=d) for d in ("auto", "float32", "fp32"))
    half = resolve(tiny_model_dir, dtype="bfloat16")
    p = prepared["smoke_arc"]
    assert {p.check_hash_for(resolved_dtype(r)) for r in (auto, explicit, alias)} == {p.check_hash_for("float32")}
    assert p.check_hash_for(resolved_dtype(half)) != p.check_hash_for("float32")
    # text checks load the model in their config's dtype
    texts = [PerplexityConfig(context_length=64, dtype=d) for d in ("auto", "float32", "bfloat16")]
    assert perplexity_hash(texts[0], auto) == perplexity_hash(texts[1], auto) == perplexity_hash(texts[1], half)
    assert perplexity_hash(texts[2], auto) != perplexity_hash(texts[0], auto)
    sanity = {config_hash(sanity_config(r, [], max_new_tokens=8, max_repetition=0.5)) for r in (auto, explicit)}
    assert len(sanity) == 1
    config = HumanEvalConfig(limit=2)
    with Store(tmp_path / "h.db") as db:  # the check each ref's results are stored under (none yet)
        humaneval = {humaneval_scores(db, r, config).check_hash for r in (auto, explicit, alias)}
        assert len(humaneval) == 1
        assert humaneval_scores(db, half, config).check_hash not in humaneval

    # and stored results: a run with `auto` and one with the dtype it resolves to share their items
    kwargs = {"suite": "smoke", "tasks": ["arc"], "limit": 3, "store": tmp_path / "s.db", "batch_size": 4}
    assert evaluate(auto, **kwargs).evaluated_items == 3
    assert evaluate(explicit, **kwargs).evaluated_items == 0
    assert evaluate(str(tiny_model_dir), dtype="float32", **kwargs).evaluated_items == 0
    assert evaluate(half, **kwargs).evaluated_items == 3  # a different dtype is a different check


# -- stores written before identities were content ----------------------------------------------------------


def _age(db_path, fingerprint, new_hash, old_hash, old_config, item_ids):
    """Put stored items back where an earlier mergeval had them: under an old check hash and config."""
    con = sqlite3.connect(db_path)
    with con:
        con.execute("INSERT OR IGNORE INTO checks (hash, kind, name, config, created_at) VALUES (?, ?, ?, ?, 0)",
                    (old_hash, "lm-eval", old_config["task"], json.dumps(old_config, sort_keys=True)))
        marks = ",".join("?" * len(item_ids))
        rows = con.execute(f"SELECT item_id, run_id, metrics, data FROM items WHERE model_fp = ? AND check_hash = ? "
                           f"AND item_id IN ({marks})", (fingerprint, new_hash, *item_ids)).fetchall()
        for item_id, run_id, metrics, data in rows:
            con.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, 0)",
                        (fingerprint, old_hash, item_id, run_id, metrics, data))
    con.close()


def _drop(db_path, fingerprint, check_hash):
    con = sqlite3.connect(db_path)
    with con:
        con.execute("DELETE FROM items WHERE model_fp = ? AND check_hash = ?", (fingerprint, check_hash))
        con.execute("UPDATE runs SET check_hash = 'gone' WHERE check_hash = ?", (check_hash,))
        con.execute("INSERT OR IGNORE INTO checks (hash, kind, name, config, created_at) VALUES "
                    "('gone', 'x', 'x', '{}', 0)")
        con.execute("DELETE FROM checks WHERE hash = ?", (check_hash,))
    con.close()


def test_rows_of_an_earlier_version_are_adopted_not_recomputed(tmp_path, smoke):
    """A store as mergeval wrote it before: HellaSwag and Winogrande under two address-polluted hashes each (one
    per process, overlapping items), every check with dtype `auto` as written. The next run evaluates nothing
    it has, moves the items under the current identity once each, and keeps apart an item whose stored prompt
    is not the task's prompt any more."""
    _, prepared = smoke
    model = make_tiny_llama(tmp_path / "m", seed=5)
    ref = resolve(model)  # dtype auto: float32 from config.json
    db_path = tmp_path / "old.db"
    kwargs = {"suite": "smoke", "tasks": ["hellaswag", "winogrande", "arc"], "limit": 4, "store": db_path,
              "batch_size": 4}
    fresh = evaluate(ref, **kwargs)
    assert fresh.evaluated_items == 12
    scores = {b: s.value for b, s in fresh.models[0].scores.items()}

    old_checks = {}
    for name, p in prepared.items():
        if name not in ("smoke_hellaswag", "smoke_winogrande", "smoke_arc"):
            continue
        new_hash = p.check_hash_for("float32")
        if name == "smoke_arc":  # no functions: only the dtype as written differs; the hash is exact
            old = {**p.check_config_for("auto")}
            _age(db_path, ref.fingerprint, new_hash, check_hash_of(old), old, ["0", "1", "2", "3"])
            old_checks[name] = [check_hash_of(old)]
        else:  # two processes, two addresses, items 0-2 and 1-3
            old_checks[name] = []
            for process, ids in ((1, ["0", "1", "2"]), (2, ["1", "2", "3"])):
                old = {**p.check_config_for("auto"), "task_config_hash": f"{process:024x}"}
                _age(db_path, ref.fingerprint, new_hash, _old_hash(old), old, ids)
                old_checks[name].append(_old_hash(old))
        _drop(db_path, ref.fingerprint, new_hash)
    # one old Winogrande item whose prompt is not the task's prompt now (an edited task): never adopted
    changed = old_checks["smoke_winogrande"][1]
    con = sqlite3.connect(db_path)
    with con:
        data = json.loads(con.execute("SELECT data FROM items WHERE check_hash = ? AND item_id = '3'",
                                      (changed,)).fetchone()[0])
        con.execute("UPDATE items SET data = ? WHERE check_hash = ? AND item_id = '3'",
                    (json.dumps({**data, "prompt_hash": "0" * 64}), changed))
    con.close()

    again = evaluate(ref, **kwargs)
    assert again.evaluated_items == 1  # only the Winogrande item whose stored prompt differs
    assert {b: s.value for b, s in again.models[0].scores.items()} == scores
    with Store(db_path) as db:
        for name, p in prepared.items():
            if name in old_checks:
                assert db.item_ids(ref.fingerprint, p.check_hash_for("float32")) == {"0", "1", "2", "3"}, name
        assert db.item_ids(ref.fingerprint, changed) == {"3"}  # kept apart, as it was
        left = {c.hash for c in db.checks("lm-eval")} & {h for hs in old_checks.values() for h in hs}
        assert left == {changed}
    ids = [(r["task"], r["item_id"], r["check"]) for r in json.loads(export_results(db_path, items=True))]
    assert len(ids) == len(set(ids)) == 13
    assert evaluate(ref, **kwargs).evaluated_items == 0
