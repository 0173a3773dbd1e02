"""Careless and hostile inputs through the real CLI: each gets exit code 2, one line on stderr that names the
problem and the fix, no traceback, and the results store keeps its exact bytes (a store that did not exist
is not created).

Every case runs `mergeval.cli.main` (the installed entry point) in its own process: one driver process
imports mergeval once and forks a child per case, with the child's stdout and stderr going to files, so the
table costs one import instead of one per case.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "80"}

DRIVER = r"""
import json, os, sys, traceback

import mergeval.cli as cli
import lm_eval.evaluator, lm_eval.tasks  # noqa: F401, E401  loaded once for the children that read tasks

cases = json.load(sys.stdin)
codes = []
for case in cases:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            out = os.open(case["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            err = os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.chdir(case["cwd"])
            sys.argv = ["mergeval", *case["args"]]
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                traceback.print_exc()  # what the interpreter prints for an uncaught exception
                code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    codes.append(os.waitstatus_to_exitcode(status))
sys.__stdout__.write(json.dumps(codes))
"""


@dataclass
class Case:
    name: str
    args: list[str]  # "{x}" placeholders are paths of the `world` fixture
    phrases: list[str]  # what the one line must say (case-insensitive)
    watch: list[str] = field(default_factory=list)  # files whose bytes (or absence) must not change


def sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def folder_state(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def damage_items_page(path: Path) -> None:
    """Overwrite the root page of the `items` table of a real store with garbage (one damaged page)."""
    db = sqlite3.connect(path)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'items'").fetchone()[0]
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with path.open("r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\x0d" + bytes(range(7, 255)) * 4)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """Broken models, stores and plans beside a real store built by a real evaluation."""
    from mergeval.evaluation import evaluate

    root = tmp_path_factory.mktemp("bad-inputs")
    w: dict[str, Path] = {"root": root, "tiny": tiny_model_dir}

    truncated = shutil.copytree(tiny_model_dir, root / "truncated")
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) - 1000])
    garbage = shutil.copytree(tiny_model_dir, root / "garbage-header")
    (garbage / "model.safetensors").write_bytes(weights[:8] + b"\xff\xfe{not json" + weights[19:])
    no_tok = shutil.copytree(tiny_model_dir, root / "no-tokenizer")
    (no_tok / "tokenizer.json").unlink()
    w.update(truncated=truncated, garbage=garbage, no_tok=no_tok)

    stores = root / "stores"
    stores.mkdir()
    store = stores / "store.db"
    result = evaluate([str(tiny_model_dir)], suite="smoke", tasks=["arc", "winogrande"], limit=2, store=store)
    assert result.evaluated_items == 4
    damaged = stores / "damaged.db"
    shutil.copy(store, damaged)
    damage_items_page(damaged)
    check = sqlite3.connect(damaged)
    with pytest.raises(sqlite3.DatabaseError):  # the precondition: SQLite itself finds the damage
        check.execute("SELECT count(*), max(metrics) FROM items").fetchall()
    check.close()
    foreign = stores / "foreign.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE notes (body TEXT)")
    db.execute("INSERT INTO notes VALUES ('not mergeval''s')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    (stores / "garbage.db").write_bytes(b"this is no database\n" * 200)
    (stores / "empty-store-folder").mkdir()
    (root / "a-file").write_text("a file, not a folder\n")
    w.update(store=store, damaged=damaged, foreign=foreign, garbage_db=stores / "garbage.db",
             store_folder=stores / "empty-store-folder", a_file=root / "a-file", new=stores / "new.db")

    plans = root / "plans"
    plans.mkdir()
    (plans / "a-folder").mkdir()
    base = f"models:\n  - candidate: {tiny_model_dir}\n  - {{parent: {tiny_model_dir}, name: its-parent}}\n"
    store_line = f"store: {stores / 'plan.db'}\n"
    texts = {
        "empty": "",
        "not-a-mapping": "- just\n- a list\n",
        "dtype": base + "settings: {dtype: int8}\n" + store_line,
        "backend": base + "settings: {backend: nope}\n" + store_line,
        "device": base + "settings: {device: gpu0}\n" + store_line,
        "model-dtype": f"models:\n  - {{candidate: {tiny_model_dir}, dtype: fp8}}\n" + store_line,
        "limit-inf": base + "checks:\n  - {type: suite, suite: smoke, limit: .inf}\n" + store_line,
        "limit-nan": base + "checks:\n  - {type: suite, suite: smoke, limit: .nan}\n" + store_line,
        "valid": base + store_line,
        "truncated-model": f"models:\n  - candidate: {truncated}\n" + store_line,
        "no-tokenizer": f"models:\n  - candidate: {no_tok}\n" + store_line,
        "truncated-model-known-store": f"models:\n  - candidate: {truncated}\nstore: {store}\n",
        "unknown-check": base + "checks: [{type: leaderbord}]\n" + store_line,
        "alias-bomb": _alias_bomb() + base + store_line,
        "alias-loop": "loop: &x [1, *x]\n" + base,
        "ray-nowhere": base + "settings: {executor: ray, ray_address: '127.0.0.1:1'}\n" + store_line,
    }
    for name, text in texts.items():
        (plans / f"{name}.yaml").write_text(text)
    w["plans"] = plans
    w["plan_store"] = stores / "plan.db"
    (plans / "existing.yaml").write_text("# my plan, keep me\n")
    return w


def _alias_bomb() -> str:
    """'Billion laughs': nine levels of nine aliases, about 400 million nodes when expanded."""
    lines = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        lines.append(f"lol{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


S, N, D, F = "{store}", "{new}", "{damaged}", "{foreign}"
CASES = [
    # --limit
    Case("limit nan", ["eval", "{tiny}", "--limit", "nan", "--store", S], ["--limit 'nan'", "count"], [S]),
    Case("limit inf", ["eval", "{tiny}", "--limit", "inf", "--store", S], ["--limit 'inf'", "fraction"], [S]),
    Case("limit 1e400", ["eval", "{tiny}", "--limit", "1e400", "--store", N], ["--limit '1e400'"], [N]),
    Case("limit -3", ["eval", "{tiny}", "--limit", "-3", "--store", N], ["--limit '-3'", "positive"], [N]),
    Case("limit 2.5", ["eval", "{tiny}", "--limit", "2.5", "--store", S], ["--limit '2.5'"], [S]),
    # run settings
    Case("dtype float64x", ["eval", "{tiny}", "--dtype", "float64x", "--store", S],
         ["dtype 'float64x'", "bfloat16"], [S]),
    Case("dtype bf16", ["eval", "{tiny}", "--dtype", "bf16", "--store", N], ["write bfloat16"], [N]),
    Case("device gpu", ["eval", "{tiny}", "--device", "gpu", "--store", S], ["device 'gpu'", "cuda:N"], [S]),
    Case("backend nope", ["eval", "{tiny}", "--backend", "nope", "--store", S], ["backend 'nope'", "mergeval-hf"],
         [S]),
    Case("sanity device", ["sanity", "{tiny}", "--device", "gpu", "--store", N], ["device 'gpu'"], [N]),
    Case("perplexity device", ["perplexity", "{tiny}", "--device", "cuda:99", "--store", N],
         ["cuda:99 is not available"], [N]),
    Case("batch size 0", ["eval", "{tiny}", "--batch-size", "0", "--store", S], ["--batch-size", "--help"], [S]),
    Case("unknown option", ["eval", "{tiny}", "--limt", "3", "--store", S], ["--limt", "--help"], [S]),
    Case("unknown command", ["evaluate", "{tiny}"], ["evaluate", "--help"], []),
    Case("unknown suite", ["eval", "{tiny}", "--suite", "nosuch", "--store", N], ["suite 'nosuch'", "smoke"], [N]),
    Case("unknown task", ["eval", "{tiny}", "--tasks", "arcc", "--store", S], ["arcc"], [S]),
    # models
    Case("missing model", ["eval", "{root}/no-model-here", "--store", N], ["does not exist"], [N]),
    Case("model is a file", ["eval", "{a_file}", "--store", N], ["is a file"], [N]),
    Case("truncated weights", ["eval", "{truncated}", "--limit", "1", "--store", S],
         ["damaged or incomplete", "download or save the model again"], [S]),
    Case("truncated weights, new store", ["eval", "{truncated}", "--limit", "1", "--store", N],
         ["damaged or incomplete"], [N]),
    Case("garbage weights header", ["eval", "{garbage}", "--limit", "1", "--store", S],
         ["damaged or incomplete"], [S]),
    Case("no tokenizer", ["eval", "{no_tok}", "--limit", "1", "--store", S], ["no tokenizer files"], [S]),
    # stores
    Case("damaged store: eval", ["eval", "{tiny}", "--tasks", "arc", "--limit", "3", "--store", D],
         ["is damaged", "--store"], [D]),
    Case("damaged store: show", ["show", "--store", D], ["is damaged"], [D]),
    Case("damaged store: export", ["export", "--store", D, "--items"], ["is damaged"], [D]),
    Case("foreign sqlite: eval", ["eval", "{tiny}", "--limit", "1", "--store", F], ["not a mergeval store"], [F]),
    Case("foreign sqlite: show", ["show", "--store", F], ["not a mergeval store"], [F]),
    Case("foreign sqlite: export", ["export", "--store", F], ["not a mergeval store"], [F]),
    Case("not sqlite: eval", ["eval", "{tiny}", "--limit", "1", "--store", "{garbage_db}"],
         ["not a readable mergeval store"], ["{garbage_db}"]),
    Case("store under a file", ["eval", "{tiny}", "--limit", "1", "--store", "{a_file}/x.db"],
         ["is a file, not a folder"], ["{a_file}"]),
    Case("store is a folder", ["show", "--store", "{store_folder}"], ["is a folder"], []),
    Case("no store to show", ["show", "--store", N], ["no results store"], [N]),
    Case("no store to export", ["export", "--store", N], ["no results store"], [N]),
    # export
    Case("export into a missing folder", ["export", "--store", S, "--out", "{root}/missing/out.json"],
         ["does not exist", "mkdir -p"], [S]),
    Case("export onto a folder", ["export", "--store", S, "--out", "{root}"], ["is a folder"], [S]),
    Case("export format", ["export", "--store", S, "--format", "xml"], ["export format 'xml'"], [S]),
    # plans
    Case("empty plan", ["run", "{plans}/empty.yaml"], ["is empty", "mergeval init"], ["{plan_store}"]),
    Case("plan is a list", ["run", "{plans}/not-a-mapping.yaml"], ["a plan is a mapping"], []),
    Case("plan is a folder", ["run", "{plans}/a-folder"], ["no plan file", "mergeval init"], []),
    Case("missing plan", ["compare", "{plans}/nope.yaml"], ["no plan file"], []),
    Case("plan dtype", ["run", "{plans}/dtype.yaml"], ["dtype.yaml:4", "dtype 'int8'"], ["{plan_store}"]),
    Case("plan backend", ["run", "{plans}/backend.yaml"], ["backend.yaml:4", "backend 'nope'"], ["{plan_store}"]),
    Case("plan device", ["run", "{plans}/device.yaml"], ["device.yaml:4", "device 'gpu0'"], ["{plan_store}"]),
    Case("plan model dtype", ["run", "{plans}/model-dtype.yaml"], ["model-dtype.yaml:2", "dtype 'fp8'"],
         ["{plan_store}"]),
    Case("plan limit inf", ["run", "{plans}/limit-inf.yaml"], ["limit-inf.yaml:5", "not a finite number"],
         ["{plan_store}"]),
    Case("plan limit nan", ["gate", "{plans}/limit-nan.yaml"], ["limit-nan.yaml:5", "not a finite number"],
         ["{plan_store}"]),
    Case("plan check type typo", ["run", "{plans}/unknown-check.yaml"], ["leaderbord", "did you mean"],
         ["{plan_store}"]),
    Case("plan alias bomb", ["run", "{plans}/alias-bomb.yaml"], ["aliases", "expand"], ["{plan_store}"]),
    Case("plan alias loop", ["run", "{plans}/alias-loop.yaml"], ["refers to the node that contains it"], []),
    Case("plan truncated model", ["run", "{plans}/truncated-model.yaml"], ["damaged or incomplete"],
         ["{plan_store}"]),
    Case("plan truncated model, store", ["run", "{plans}/truncated-model-known-store.yaml"],
         ["damaged or incomplete"], [S]),
    Case("plan model without tokenizer", ["run", "{plans}/no-tokenizer.yaml"], ["no tokenizer files"],
         ["{plan_store}"]),
    Case("gate without a store", ["gate", "{plans}/valid.yaml"], ["no results store", "mergeval run"],
         ["{plan_store}"]),
    Case("init onto a plan", ["init", "{plans}/existing.yaml"], ["already exists", "--force"],
         ["{plans}/existing.yaml"]),
    # --executor / --address (docs/cluster.md)
    Case("unknown executor", ["run", "{plans}/valid.yaml", "--executor", "dask"], ["unknown executor 'dask'", "ray"],
         ["{plan_store}"]),
    Case("address without ray", ["run", "{plans}/valid.yaml", "--executor", "local", "--address", "auto"],
         ["--address is for --executor ray"], ["{plan_store}"]),
    Case("no ray cluster there", ["run", "{plans}/valid.yaml", "--executor", "ray", "--address", "127.0.0.1:1"],
         ["no ray cluster answers at 127.0.0.1:1", "ray start --head"], ["{plan_store}"]),
    Case("not a ray address", ["eval", "{tiny}", "--executor", "ray", "--address", "nowhere", "--store", S],
         ["'nowhere' is not a ray address", "ray://"], [S]),
    Case("plan's ray cluster not there", ["run", "{plans}/ray-nowhere.yaml"], ["no ray cluster answers"],
         ["{plan_store}"]),
]


def _fill(text: str, world: dict[str, Path]) -> str:
    return text.format(**{k: str(v) for k, v in world.items()})


def run_cases(cases: list[Case], world: dict[str, Path], tmp: Path) -> list[dict]:
    """Run the cases in forks of one driver process; returns exit code, stdout and stderr per case."""
    specs = []
    for i, case in enumerate(cases):
        specs.append({"args": [_fill(a, world) for a in case.args], "cwd": str(tmp),
                      "stdout": str(tmp / f"{i}.out"), "stderr": str(tmp / f"{i}.err")})
    proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(specs), capture_output=True, text=True,
                          env=ENV, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads(proc.stdout)
    return [{"code": code, "stdout": Path(s["stdout"]).read_text(), "stderr": Path(s["stderr"]).read_text()}
            for code, s in zip(codes, specs, strict=True)]


def test_every_bad_input_is_one_line_exit_2_and_leaves_the_store_as_it_was(world, tmp_path):
    watched = {p: _fill(p, world) for case in CASES for p in case.watch}
    before = {p: (sha(Path(f)), folder_state(Path(f).parent) if Path(f).parent.is_dir() else None)
              for p, f in watched.items()}
    results = run_cases(CASES, world, tmp_path)
    failures = []
    for case, res in zip(CASES, results, strict=True):
        problems = []
        lines = [line for line in res["stderr"].splitlines() if line.strip()]
        if res["code"] != 2:
            problems.append(f"exit code {res['code']}")
        if "Traceback" in res["stdout"] + res["stderr"]:
            problems.append("traceback")
        if len(lines) != 1 or not lines[0].startswith("error: "):
            problems.append(f"{len(lines)} lines on stderr")
        text = " ".join(lines).lower()
        problems += [f"does not say {p!r}" for p in case.phrases if p.lower() not in text]
        for p in case.watch:
            f = Path(watched[p])
            after = (sha(f), folder_state(f.parent) if f.parent.is_dir() else None)
            if after[0] != before[p][0]:
                problems.append(f"{f.name} changed" if after[0] and before[p][0] else f"{f.name} appeared or went")
            if after[1] != before[p][1]:
                added = sorted(set(after[1] or []) - set(before[p][1] or []))
                gone = sorted(set(before[p][1] or []) - set(after[1] or []))
                problems.append(f"beside {f.name}: {added} appeared, {gone} went")
        if problems:
            failures.append(f"{case.name}: {'; '.join(problems)}\n    stderr: {res['stderr'][-1500:]}")
    assert not failures, "\n".join(failures)


def test_the_store_was_really_usable(world, tmp_path):
    """The untouched store of the table is a working store: the same commands on it succeed."""
    results = run_cases([Case("show", ["show", "--store", "{store}"], []),
                         Case("export", ["export", "--store", "{store}", "--items"], [])], world, tmp_path)
    assert [r["code"] for r in results] == [0, 0], results
    assert "tiny-a" in results[0]["stdout"]
    rows = json.loads(results[1]["stdout"])
    assert {r["task"] for r in rows} == {"smoke_arc", "smoke_winogrande"} and len(rows) == 4


def _read_only(folder: Path, args: list[str]) -> subprocess.CompletedProcess:
    """Run mergeval with `folder` read-only: a read-only bind mount in a private mount namespace for root
    (which file modes do not stop), the folder's mode for anyone else."""
    cmd = [sys.executable, "-m", "mergeval.cli", *args]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600, check=False)
        finally:
            folder.chmod(0o755)
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh",
                           str(folder), *cmd], capture_output=True, text=True, env=ENV, timeout=600, check=False)


def test_show_and_export_read_a_store_in_a_read_only_folder(world, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    store = folder / "store.db"
    shutil.copy(world["store"], store)
    assert sqlite3.connect(store).execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # needs -shm to read
    before = (sha(store), folder_state(folder))
    probe = _read_only(folder, ["eval", str(world["tiny"]), "--tasks", "arc", "--limit", "3",
                                "--store", str(store)])
    assert probe.returncode == 2 and "read-only" in probe.stderr, probe.stderr  # really read-only
    shown = _read_only(folder, ["show", "--store", str(store)])
    assert shown.returncode == 0, shown.stderr
    assert "tiny-a" in shown.stdout and "ARC" in shown.stdout
    exported = _read_only(folder, ["export", "--store", str(store), "--items"])
    assert exported.returncode == 0, exported.stderr
    assert len(json.loads(exported.stdout)) == 4
    assert (sha(store), folder_state(folder)) == before
